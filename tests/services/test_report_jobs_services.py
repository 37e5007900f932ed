"""A version report started from the auditor's page is rendered by the real Celery worker (a
prefork pool process, which the renderer's billiard fork server may give a child) and its
result, with the SHA-256 the audit trail recorded, is downloaded from the job page."""

from __future__ import annotations

import hashlib
from typing import Any

from compliance.models import JobStatus, ReportJob
from core import audit
from core.models import AuditEvent
from tests.services.conftest import wait_for


def test_the_real_worker_renders_a_version_report_job(
    committed_db: None, celery_worker_process: Any, production: Any, auditor: Any, client: Any
) -> None:
    client.force_login(auditor)
    report = {"kind": "version_report", "model": production.registered_model.name, "version": production.version}
    response = client.post("/audit/jobs/", report)
    assert response.status_code == 302
    job = ReportJob.objects.get()
    assert AuditEvent.objects.filter(action=audit.REPORT_JOB_STARTED, target_id=str(job.pk)).exists()

    def finished() -> bool:
        return ReportJob.objects.get(pk=job.pk).status in (JobStatus.DONE, JobStatus.FAILED)

    wait_for(finished, timeout=240, message="the worker to finish the report job")
    job.refresh_from_db()
    assert job.status == JobStatus.DONE, job.error
    event = AuditEvent.objects.get(action=audit.REPORT_JOB_FINISHED, target_id=str(job.pk))
    assert event.data["sha256"] == job.result_sha256 and event.actor_username == auditor.username

    state = client.get(response["Location"] + "status.json").json()
    assert state["status"] == "done" and state["result_url"]
    download = client.get(state["result_url"])
    assert download.content.startswith(b"%PDF-")
    assert hashlib.sha256(download.content).hexdigest() == job.result_sha256 == download["X-Report-SHA256"]
    log = celery_worker_process.read_text()
    assert "compliance.tasks.run_report_job_task" in log and "daemonic processes" not in log
