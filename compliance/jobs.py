"""Long compliance work off the request path: verifying the audit trail and rendering the period
and version reports run as Celery tasks (compliance.tasks), so no web worker is killed at its
timeout half way. Starting a job writes its row and "compliance.job.started" in one transaction
and sends the task after commit; the task runs the same services the API calls, stores the result
file, and writes "compliance.job.finished" with the file's SHA-256 (or the failure)."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from datetime import datetime
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from compliance import services
from compliance.errors import ReportError
from compliance.models import FINISHED, JobKind, JobStatus, ReportJob
from core import audit
from core import jobs as background
from core.actors import Actor, person
from core.canonical import canonical_json
from core.errors import DomainError
from lifecycle.models import ModelVersion

log = logging.getLogger(__name__)

SEND = background.job("report_job", __name__)  # compliance.tasks registers its task

RUNNING_TEXT = {
    JobKind.VERIFY: "Recomputing the audit chain, every prediction seal and every evidence row.",
    JobKind.PERIOD_REPORT: "Collecting the period's evidence and rendering the PDF.",
    JobKind.VERSION_REPORT: "Collecting the version's evidence and rendering the PDF.",
}


# --- starting -------------------------------------------------------------------------------
@transaction.atomic
def _start(kind: str, parameters: dict[str, Any], *, actor: Actor) -> ReportJob:
    job = ReportJob.objects.create(
        kind=kind, parameters=parameters, requested_by=person(actor), progress="Waiting for a worker."
    )
    audit.record(
        audit.REPORT_JOB_STARTED,
        actor=actor,
        target=job,
        data={"job": str(job.public_id), "kind": kind, "parameters": parameters},
    )
    background.after_commit(SEND, job.pk)
    return job


def start_verification(*, actor: Actor) -> ReportJob:
    """Queue "verify now": the chain, the seals, the evidence rows and the latest checkpoint."""
    return _start(JobKind.VERIFY, {}, actor=actor)


def start_version_report(version_id: int, *, actor: Actor) -> ReportJob:
    """Queue the compliance report of one version (ModelVersion.DoesNotExist if there is none)."""
    version = ModelVersion.objects.select_related("registered_model").get(pk=version_id)
    parameters = {"version_id": version.pk, "model": version.registered_model.name, "version": version.version}
    return _start(JobKind.VERSION_REPORT, parameters, actor=actor)


def start_period_report(*, since: datetime, until: datetime, actor: Actor) -> ReportJob:
    """Queue the governance report of [since, until); a period the report refuses is refused now
    (ReportError), not after a worker took it."""
    services.check_period(since=since, until=until)
    return _start(JobKind.PERIOD_REPORT, {"since": since.isoformat(), "until": until.isoformat()}, actor=actor)


# --- running (the task) ----------------------------------------------------------------------
@transaction.atomic
def _claim(job_id: int) -> ReportJob | None:
    """queued (or running, when a dead worker's task is delivered again) -> running."""
    job = ReportJob.objects.select_for_update().get(pk=job_id)
    if job.status in FINISHED:
        return None
    job.status = JobStatus.RUNNING
    job.started_at = timezone.now()
    job.progress = RUNNING_TEXT[JobKind(job.kind)]
    job.save(update_fields=["status", "started_at", "progress"])
    return job


def run_job(job_id: int) -> ReportJob:
    """Produce the job's result and finish it, done or failed; a finished job is left as it is
    (a task delivered twice). Database outages propagate, so the task is retried."""
    job = _claim(job_id)
    if job is None:
        return ReportJob.objects.get(pk=job_id)
    try:
        filename, content, summary = _produce(job)
    except (OperationalError, InterfaceError):
        raise
    except DomainError as exc:
        return fail_job(job.pk, error=exc.message)
    except SoftTimeLimitExceeded:
        return fail_job(job.pk, error=f"The job ran past its time limit of {settings.CELERY_TASK_SOFT_TIME_LIMIT} s.")
    except Exception as exc:  # recorded as the job's failure: the auditor sees why, nothing is stuck
        log.exception("report job %s failed", job.public_id)
        return fail_job(job.pk, error=services.without_server_paths(f"{type(exc).__name__}: {exc}"))
    return finish_job(job.pk, filename=filename, content=content, summary=summary)


def _produce(job: ReportJob) -> tuple[str, bytes, dict[str, Any]]:
    actor = get_user_model().objects.get(pk=job.requested_by_id)
    p = job.parameters
    if job.kind == JobKind.VERIFY:
        result = services.verify_audit_trail(actor=actor)
        summary = _jsonable(result)
        stamp = f"{result['verified_at']:%Y%m%dT%H%M%SZ}"
        return f"verification-{stamp}.json", canonical_json(summary).encode(), summary
    if job.kind == JobKind.VERSION_REPORT:
        report = services.generate_version_report(p["version_id"], actor=actor)
        return f"{p['model']}-v{p['version']}-compliance-report.pdf", report.pdf, {}
    since, until = datetime.fromisoformat(p["since"]), datetime.fromisoformat(p["until"])
    report = services.generate_period_report(since=since, until=until, actor=actor)
    return services.period_filename(since=since, until=until), report.pdf, {}


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def finish_job(job_id: int, *, filename: str, content: bytes, summary: dict[str, Any]) -> ReportJob:
    """running -> done: the result file is stored first, then the row and its audit event are
    written together; if that transaction fails (or another delivery finished first) the file goes."""
    sha256 = hashlib.sha256(content).hexdigest()
    stored = default_storage.save(f"reports/{job_id}-{sha256[:12]}/{filename}", ContentFile(content))
    try:
        with transaction.atomic():
            job = ReportJob.objects.select_for_update().select_related("requested_by").get(pk=job_id)
            if job.status in FINISHED:
                default_storage.delete(stored)
                return job
            job.status = JobStatus.DONE
            job.finished_at = timezone.now()
            job.progress = "Done."
            job.result_file, job.result_sha256, job.result_bytes = stored, sha256, len(content)
            job.summary = summary
            job.save()
            data = {"job": str(job.public_id), "kind": job.kind, "status": JobStatus.DONE}
            audit.record(
                audit.REPORT_JOB_FINISHED,
                actor=job.requested_by,
                target=job,
                data={**data, "sha256": sha256, "bytes": len(content)},
            )
    except BaseException:
        default_storage.delete(stored)
        raise
    return job


@transaction.atomic
def fail_job(job_id: int, *, error: str) -> ReportJob:
    """queued or running -> failed, with the reason, in the job's finished audit event too."""
    job = ReportJob.objects.select_for_update().select_related("requested_by").get(pk=job_id)
    if job.status in FINISHED:
        return job
    job.status = JobStatus.FAILED
    job.finished_at = timezone.now()
    job.progress = "Failed."
    job.error = error[:2000] or "The job failed."
    job.save()
    data = {"job": str(job.public_id), "kind": job.kind, "status": JobStatus.FAILED, "error": job.error}
    audit.record(audit.REPORT_JOB_FINISHED, actor=job.requested_by, target=job, data=data)
    return job


# --- reading ----------------------------------------------------------------------------------
def get_job(public_id: Any) -> ReportJob:
    return ReportJob.objects.select_related("requested_by").get(public_id=public_id)


def recent_jobs(*, kind: str, limit: int = 10) -> list[ReportJob]:
    return list(ReportJob.objects.filter(kind=kind).select_related("requested_by").order_by("-created_at")[:limit])


def stranded_jobs(*, now: datetime, queued_for: int, running_for: int) -> QuerySet[ReportJob]:
    """Jobs nobody works on: their task was lost with the broker, or their worker died."""
    return background.stranded(
        ReportJob.objects.all(),
        now=now,
        queued=(JobStatus.QUEUED, "created_at"),
        running=(JobStatus.RUNNING, "started_at"),
        queued_for=queued_for,
        running_for=running_for,
    )


def job_state(job: ReportJob) -> dict[str, Any]:
    """What the job page polls."""
    return {
        "id": str(job.public_id),
        "kind": job.kind,
        "status": job.status,
        "verdict": job.verdict,
        "finished": job.is_finished,
        "progress": job.progress,
        "error": job.error,
        "result_sha256": job.result_sha256,
        "result_bytes": job.result_bytes,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def read_result(job: ReportJob) -> bytes:
    """The stored result, checked against the SHA-256 its finished event recorded."""
    if job.status != JobStatus.DONE:
        raise ReportError("This job has no result.", status=404)
    with default_storage.open(job.result_file, "rb") as handle:
        content: bytes = handle.read()
    if hashlib.sha256(content).hexdigest() != job.result_sha256:
        raise ReportError("The stored result no longer matches the SHA-256 recorded for it.", status=409)
    return content


def verification_for_display(summary: dict[str, Any]) -> dict[str, Any]:
    """The stored verification with its moments as datetimes again (for the page's date filters)."""
    if not summary:
        return {}
    shown = {**summary, "verified_at": datetime.fromisoformat(summary["verified_at"])}
    checkpoint = summary.get("checkpoint") or {}
    if checkpoint.get("checkpoint"):
        inner = {**checkpoint["checkpoint"], "time": datetime.fromisoformat(checkpoint["checkpoint"]["time"])}
        shown["checkpoint"] = {**checkpoint, "checkpoint": inner}
    return shown
