"""Verify now, the period report and version reports run as jobs: the page starts one and polls
it; a worker (here eager, at commit) produces the result, whose SHA-256 the audit trail records."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from compliance import jobs, reports
from compliance.models import JobStatus, ReportJob
from compliance.pdf_render import render_pdf
from compliance.tasks import resend_stranded_report_jobs_task
from core import audit
from core.models import AuditEvent

pytestmark = pytest.mark.usefixtures("eager_tasks")


def kinds(served: Any) -> dict[str, dict[str, str]]:
    today = timezone.now().date()
    return {
        "verify": {"kind": "verify"},
        "period_report": {"kind": "period_report", "since": f"{today - timedelta(days=7)}", "until": f"{today}"},
        "version_report": {"kind": "version_report", "model": served.registered_model.name, "version": "1"},
    }


def start(client: Client, data: dict[str, str], callbacks: Any, *, execute: bool = True) -> Any:
    with callbacks(execute=execute):
        return client.post("/audit/jobs/", data)


def finished_event(job: ReportJob) -> AuditEvent:
    return AuditEvent.objects.get(
        action=audit.REPORT_JOB_FINISHED, target_type="compliance.reportjob", target_id=str(job.pk)
    )


@pytest.mark.parametrize("kind", ["verify", "period_report", "version_report"])
@pytest.mark.parametrize("who", ["auditor", "risk_officer"])
def test_a_job_started_from_the_page_ends_done_with_its_hash_in_the_audit_trail(
    kind, who, served, client, request, django_capture_on_commit_callbacks
) -> None:
    user = request.getfixturevalue(who)
    client.force_login(user)
    response = start(client, kinds(served)[kind], django_capture_on_commit_callbacks)
    job = ReportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/audit/jobs/{job.public_id}/"

    started = AuditEvent.objects.get(action=audit.REPORT_JOB_STARTED)
    assert started.actor_username == user.username and started.target_id == str(job.pk)
    assert started.data["kind"] == kind and started.data["job"] == str(job.public_id)
    assert job.kind == kind and job.status == JobStatus.DONE and job.requested_by == user
    assert job.started_at and job.finished_at and not job.error

    finished = finished_event(job)
    assert finished.seq > started.seq and finished.actor_username == user.username
    assert finished.data["status"] == "done" and finished.data["sha256"] == job.result_sha256

    page = client.get(f"/audit/jobs/{job.public_id}/").content.decode()
    badge = 'data-verdict="PASSED">Verification PASSED</span>' if kind == "verify" else 'id="job-status">Done</span>'
    assert badge in page and job.result_sha256 in page
    assert f'href="/audit/jobs/{job.public_id}/result"' in page and "js/report-job.js" in page
    state = client.get(f"/audit/jobs/{job.public_id}/status.json").json()
    assert state["status"] == "done" and state["finished"] is True
    assert state["result_sha256"] == job.result_sha256 and state["result_url"] == f"/audit/jobs/{job.public_id}/result"

    download = client.get(state["result_url"])
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == job.result_sha256 == download["X-Report-SHA256"]
    assert len(download.content) == job.result_bytes == finished.data["bytes"]
    if kind == "verify":
        assert download["Content-Type"] == "application/json"
        assert json.loads(download.content)["ok"] is True
        assert "Verified: the audit trail, the prediction seals and every evidence row are intact." in page
    else:
        assert download["Content-Type"] == "application/pdf" and download.content.startswith(b"%PDF-")
        generated = AuditEvent.objects.get(action="governance.report.generated")
        assert generated.data["sha256"] == job.result_sha256 and generated.actor_username == user.username
    if kind == "version_report":
        name = served.registered_model.name
        assert download["Content-Disposition"] == f'attachment; filename="{name}-v1-compliance-report.pdf"'


def test_the_job_page_follows_a_queued_job_until_a_worker_takes_it(
    served, auditor, client, django_capture_on_commit_callbacks
) -> None:
    client.force_login(auditor)
    start(client, kinds(served)["version_report"], django_capture_on_commit_callbacks, execute=False)
    job = ReportJob.objects.get()
    assert job.status == JobStatus.QUEUED
    page = client.get(f"/audit/jobs/{job.public_id}/").content.decode()
    assert 'id="job-status">Queued</span>' in page and "Waiting for a worker." in page
    assert f'data-status-url="/audit/jobs/{job.public_id}/status.json"' in page and "<script>" not in page
    state = client.get(f"/audit/jobs/{job.public_id}/status.json").json()
    assert state["status"] == "queued" and state["finished"] is False and state["result_url"] is None
    assert client.get(f"/audit/jobs/{job.public_id}/result").status_code == 404

    assert jobs.run_job(job.pk).status == JobStatus.DONE
    assert client.get(f"/audit/jobs/{job.public_id}/status.json").json()["status"] == "done"
    assert jobs.run_job(job.pk).status == JobStatus.DONE  # a second delivery changes nothing
    assert AuditEvent.objects.filter(action=audit.REPORT_JOB_FINISHED).count() == 1


@pytest.mark.parametrize("who", ["data_scientist", "outsider"])
def test_other_roles_can_neither_start_nor_see_nor_download_a_job(
    who, served, auditor, client, request, django_capture_on_commit_callbacks
) -> None:
    client.force_login(auditor)
    start(client, kinds(served)["version_report"], django_capture_on_commit_callbacks)
    job = ReportJob.objects.get()
    client.force_login(request.getfixturevalue(who))
    for data in kinds(served).values():
        assert start(client, data, django_capture_on_commit_callbacks).status_code == 403
    assert ReportJob.objects.count() == 1
    assert AuditEvent.objects.filter(action=audit.REPORT_JOB_STARTED).count() == 1
    for suffix in ("", "status.json", "result"):
        assert client.get(f"/audit/jobs/{job.public_id}/{suffix}").status_code == 403
    assert client.get(f"/audit/models/{served.registered_model.name}/versions/1/report.pdf").status_code == 403


def test_a_failing_job_ends_failed_with_its_error_and_a_finished_event(
    served, auditor, client, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise reports.RenderError("rendering took longer than 120 s and was stopped")

    monkeypatch.setattr(reports, "render_pdf", broken)
    client.force_login(auditor)
    response = start(client, kinds(served)["period_report"], django_capture_on_commit_callbacks)
    assert response.status_code == 302
    job = ReportJob.objects.get()
    assert job.status == JobStatus.FAILED and not job.result_file and not job.result_sha256
    assert "rendering took longer than 120 s" in job.error
    event = finished_event(job)
    assert event.data["status"] == "failed" and event.data["error"] == job.error
    assert event.actor_username == auditor.username
    page = client.get(f"/audit/jobs/{job.public_id}/").content.decode()
    assert 'id="job-status">Failed</span>' in page and "rendering took longer than 120 s" in page
    state = client.get(f"/audit/jobs/{job.public_id}/status.json").json()
    assert state["status"] == "failed" and state["finished"] and "120 s" in state["error"]
    assert client.get(f"/audit/jobs/{job.public_id}/result").status_code == 404


def test_a_bad_period_or_version_is_refused_at_the_start_and_starts_nothing(
    served, auditor, client, django_capture_on_commit_callbacks
) -> None:
    client.force_login(auditor)
    today = timezone.now().date()
    backwards = {"kind": "period_report", "since": f"{today}", "until": f"{today - timedelta(days=3)}"}
    response = start(client, backwards, django_capture_on_commit_callbacks)
    assert response.status_code == 400 and "The period must end after it starts." in response.content.decode()
    response = start(client, {"kind": "period_report", "since": "last-week"}, django_capture_on_commit_callbacks)
    assert response.status_code == 400
    missing = {"kind": "version_report", "model": served.registered_model.name, "version": "9"}
    assert start(client, missing, django_capture_on_commit_callbacks).status_code == 404
    odd = {"kind": "version_report", "model": served.registered_model.name, "version": "²"}
    assert start(client, odd, django_capture_on_commit_callbacks).status_code == 404
    assert start(client, {"kind": "export"}, django_capture_on_commit_callbacks).status_code == 400
    assert not ReportJob.objects.exists() and not AuditEvent.objects.filter(action=audit.REPORT_JOB_STARTED).exists()


def test_the_pages_offer_the_jobs_instead_of_rendering_in_the_request(served, auditor, client) -> None:
    client.force_login(auditor)
    name = served.registered_model.name
    version_page = client.get(f"/audit/models/{name}/versions/1/").content.decode()
    assert 'action="/audit/jobs/"' in version_page and 'value="version_report"' in version_page
    old_link = client.get(f"/audit/models/{name}/versions/1/report.pdf")
    assert old_link.status_code == 302 and old_link["Location"] == f"/audit/models/{name}/versions/1/#report"
    reports_page = client.get("/audit/reports/?since=2026-01-01&until=2026-01-31")
    assert reports_page.status_code == 200 and reports_page["Content-Type"].startswith("text/html")
    assert 'value="period_report"' in reports_page.content.decode()
    assert 'value="verify"' in client.get("/audit/trail/").content.decode()
    assert not AuditEvent.objects.filter(action="governance.report.generated").exists()


def test_a_job_whose_task_was_lost_is_sent_again_by_the_sweep(
    served, auditor, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=False):  # the broker lost it
        job = jobs.start_verification(actor=auditor)
    assert resend_stranded_report_jobs_task.delay().get() == []  # not stranded yet
    ReportJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(hours=1))
    assert resend_stranded_report_jobs_task.delay().get() == [job.pk]
    assert ReportJob.objects.get(pk=job.pk).status == JobStatus.DONE


def test_a_stored_result_that_changed_is_not_handed_out(
    served, auditor, client, django_capture_on_commit_callbacks
) -> None:
    from django.core.files.storage import default_storage

    client.force_login(auditor)
    start(client, {"kind": "verify"}, django_capture_on_commit_callbacks)
    job = ReportJob.objects.get()
    with default_storage.open(job.result_file, "wb") as handle:
        handle.write(b'{"ok": true}')
    response = client.get(f"/audit/jobs/{job.public_id}/result")
    assert response.status_code == 409 and b"no longer matches" in response.content


def _render_in_a_daemon(queue: Any) -> None:
    try:
        pdf = render_pdf("<p>inside a worker</p>", attachments=[], static_roots=[], timeout=60).pdf
        queue.put(("ok", pdf[:5]))
    except BaseException as exc:
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


def test_reports_render_inside_a_daemon_process_like_a_celery_prefork_worker() -> None:
    # The standard library refuses children to a daemon process, which every prefork pool
    # process is; the renderer's billiard fork server is allowed.
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=_render_in_a_daemon, args=(queue,), daemon=True)
    process.start()
    status, payload = queue.get(timeout=120)
    process.join(timeout=10)
    assert (status, payload) == ("ok", b"%PDF-")
