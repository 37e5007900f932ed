"""An officer sees a stuck check on the review page and re-queues it (audited)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import AuditEvent
from governance import services, workflow
from governance.errors import WorkflowError
from governance.models import CheckRun
from lifecycle.models import ModelVersion, Status


def test_an_officer_requeues_stuck_checks_from_the_review_page(
    draft_version, data_scientist, risk_officer, client, eager_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):  # the broker lost them: never sent
        workflow.submit_version(draft_version.pk, actor=data_scientist)
    page = f"/admin/governance/versionreview/{draft_version.pk}/change/"
    client.force_login(risk_officer)
    assert b'id="stuck-checks"' not in client.get(page).content  # queued a moment ago: not stuck yet
    with pytest.raises(WorkflowError):
        services.requeue_checks(draft_version.pk, actor=risk_officer)
    CheckRun.objects.filter(version=draft_version).update(queued_at=timezone.now() - timedelta(hours=1))
    shown = client.get(page).content.decode()
    assert 'id="stuck-checks"' in shown and "no worker is on it" in shown
    with pytest.raises(WorkflowError):
        services.requeue_checks(draft_version.pk, actor=data_scientist)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/admin/governance/versionreview/{draft_version.pk}/decide/", {"action": "requeue_checks"}
        )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="governance.checks.requeued")
    assert event.actor_username == risk_officer.username and len(event.data["checks"]) == 5
    assert ModelVersion.objects.get(pk=draft_version.pk).status == Status.IN_REVIEW
    assert not CheckRun.objects.filter(version=draft_version, status="queued").exists()
