"""Celery tasks: thin interfaces that take ids and call one function. A check task runs the
check (which computes a verdict) and records the verdict through the workflow."""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from core import jobs
from governance import expiry, integrity, notifications, selectors, workflow
from governance.errors import TransientCheckError
from governance.models import CheckStatus


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(TransientCheckError, OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=5,
)
def run_check_task(check_id: int) -> str:
    # the checks (scikit-learn, fairlearn, pandas) are imported by the worker that runs one, not by
    # every process that starts Django and registers this task (verify_audit, the web server)
    from governance import checks

    try:
        verdict = checks.run_check(check_id)
    except SoftTimeLimitExceeded:
        seconds = settings.CELERY_TASK_SOFT_TIME_LIMIT
        workflow.record_check_result(
            check_id, status=CheckStatus.ERROR, metrics={}, error=f"The check exceeded its time limit of {seconds} s."
        )
        return CheckStatus.ERROR
    if verdict is None:
        return "already finished"
    workflow.record_check_result(
        check_id,
        status=verdict.status,
        metrics=verdict.metrics,
        inputs=verdict.inputs,
        error=verdict.error,
        warning=verdict.warning,
        started_at=verdict.started_at,
    )
    return verdict.status


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def notify_task(kind: str, version_id: int, decision_id: int | None = None) -> int:
    return notifications.notify(kind, version_id, decision_id)


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def integrity_check_task() -> list[int]:
    """Suspend every servable version whose approval no longer holds or has expired, and remind
    people of approvals about to expire (beat, every INTEGRITY_CHECK_INTERVAL_SECONDS)."""
    suspended = [s.version.pk for s in integrity.suspend_void_versions()]
    return suspended + expiry.sweep_expiries().suspended


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def resend_stranded_checks_task() -> list[int]:
    """Send again every check nobody is working on (beat, every CHECK_SWEEP_SECONDS): its task was
    lost to a broker outage, or its worker died. Running a check twice records it once."""
    stranded = selectors.stranded_checks(
        now=timezone.now(),
        queued_for=settings.CHECK_RESEND_AFTER_SECONDS,
        running_for=settings.CELERY_TASK_TIME_LIMIT + settings.CHECK_RESEND_AFTER_SECONDS,
    )
    ids = list(stranded.values_list("pk", flat=True)[:500])
    for check_id in ids:
        run_check_task.delay(check_id)
    return ids


jobs.register("run_check", run_check_task.delay)
jobs.register("notify", notify_task.delay)


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def overlay_expiry_task() -> list[int]:
    """Open a finding for each limitation or overlay that expired."""
    from governance import overlays

    return overlays.open_expiry_findings()
