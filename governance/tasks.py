"""Celery tasks: thin interfaces that take ids and call one function."""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError

from governance import checks, notifications


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(checks.TransientCheckError, OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=5,
)
def run_check_task(check_id: int) -> str:
    try:
        return checks.run_check(check_id)
    except SoftTimeLimitExceeded:
        checks.record_timeout(check_id, settings.CELERY_TASK_SOFT_TIME_LIMIT)
        return "error"


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def notify_task(kind: str, version_id: int) -> int:
    return notifications.notify(kind, version_id)
