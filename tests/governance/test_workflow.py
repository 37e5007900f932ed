"""Submission moves a draft to checking through governance.workflow, audited."""

from __future__ import annotations

import pytest

from governance import workflow
from governance.errors import WorkflowError
from governance.models import AuditEvent
from lifecycle.errors import Forbidden
from lifecycle.models import ModelVersion, Status

pytestmark = pytest.mark.django_db


def test_submit_moves_a_draft_to_checking_with_one_audit_event(draft_version, data_scientist):
    version = workflow.submit_version(draft_version.pk, actor=data_scientist)
    assert version.status == Status.CHECKING
    assert version.submitted_by == data_scientist and version.submitted_at is not None
    events = AuditEvent.objects.filter(action="lifecycle.version.submitted", target_id=str(version.pk))
    assert events.count() == 1
    event = events.get()
    assert event.actor == data_scientist
    assert event.data["artifact_sha256"] == version.artifact_sha256
    assert event.data["card_sha256"] == version.card.content_hash()


def test_submit_runs_the_artifact_verification_task(
    draft_version, data_scientist, django_capture_on_commit_callbacks, eager_tasks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        workflow.submit_version(draft_version.pk, actor=data_scientist)
    assert len(callbacks) == 1
    # no broker configured: the task ran in-process once the transaction committed
    assert AuditEvent.objects.filter(action="lifecycle.artifact.verified", target_id=str(draft_version.pk)).exists()


def test_a_version_cannot_be_submitted_twice_and_the_refusal_is_audited(draft_version, data_scientist):
    workflow.submit_version(draft_version.pk, actor=data_scientist)
    with pytest.raises(WorkflowError, match="checking; it cannot move to checking"):
        workflow.submit_version(draft_version.pk, actor=data_scientist)
    refused = AuditEvent.objects.get(action="governance.action.refused")
    assert refused.data["attempted"] == "checking->checking"
    assert refused.actor == data_scientist
    assert AuditEvent.objects.filter(action="lifecycle.version.submitted").count() == 1


@pytest.mark.parametrize("persona", ["risk_officer", "auditor", "outsider"])
def test_only_data_scientists_submit(request, draft_version, persona):
    actor = request.getfixturevalue(persona)
    with pytest.raises(Forbidden):
        workflow.submit_version(draft_version.pk, actor=actor)
    assert ModelVersion.objects.get(pk=draft_version.pk).status == Status.DRAFT
    assert AuditEvent.objects.filter(action="governance.action.refused", actor=actor).count() == 1


def test_submit_through_the_api(api_client, draft_version, data_scientist):
    api_client.force_authenticate(data_scientist)
    response = api_client.post(f"/api/v1/models/{draft_version.registered_model.name}/versions/1/submit")
    assert response.status_code == 200
    assert response.json()["status"] == "checking"
    again = api_client.post(f"/api/v1/models/{draft_version.registered_model.name}/versions/1/submit")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "transition_refused"


def test_crafted_submit_by_an_auditor_through_the_page_is_refused_and_audited(client, draft_version, auditor):
    client.force_login(auditor)
    response = client.post(f"/registry/models/{draft_version.registered_model.name}/versions/1/submit/")
    assert response.status_code == 403
    assert ModelVersion.objects.get(pk=draft_version.pk).status == Status.DRAFT
    assert AuditEvent.objects.filter(action="governance.action.refused", actor=auditor).exists()


def test_only_drafts_can_be_edited(draft_version, data_scientist):
    from lifecycle import services
    from lifecycle.errors import LifecycleError

    workflow.submit_version(draft_version.pk, actor=data_scientist)
    with pytest.raises(LifecycleError, match="only drafts can be edited"):
        services.update_draft(draft_version.pk, actor=data_scientist, card={}, sensitive_features=["sex"])
