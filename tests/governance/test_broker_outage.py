"""A broker outage at submission loses no check: the request succeeds, the checks stay queued,
and the periodic sweep sends them once the broker is back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from kombu.exceptions import OperationalError

from core import jobs
from governance import tasks
from governance.models import CheckRun
from lifecycle.models import Status

pytestmark = pytest.mark.django_db


def broker_down(*args):
    raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


def test_a_submission_during_a_broker_outage_answers_and_the_sweep_runs_its_checks_later(
    draft_version, data_scientist, client, monkeypatch, django_capture_on_commit_callbacks, eager_tasks
):
    monkeypatch.setitem(jobs.JOBS._provided, "run_check", broker_down)
    client.force_login(data_scientist)
    url = f"/registry/models/{draft_version.registered_model.name}/versions/{draft_version.version}/submit/"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url)
    assert response.status_code in (200, 302), response.content[:300]
    draft_version.refresh_from_db()
    assert draft_version.status == Status.CHECKING
    assert set(CheckRun.objects.filter(version=draft_version).values_list("status", flat=True)) == {"queued"}

    # not yet stranded: the sweep leaves checks alone while their task may still be on its way
    monkeypatch.undo()
    assert tasks.resend_stranded_checks_task() == []
    later = timezone.now() + timedelta(minutes=10)
    monkeypatch.setattr(tasks.timezone, "now", lambda: later)
    with django_capture_on_commit_callbacks(execute=True):
        sent = tasks.resend_stranded_checks_task()
    assert len(sent) == 5
    draft_version.refresh_from_db()
    assert draft_version.status == Status.IN_REVIEW
    assert tasks.resend_stranded_checks_task() == []  # nothing left to send
