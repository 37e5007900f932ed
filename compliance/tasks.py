"""Celery tasks of the compliance app."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from compliance import checkpoints, incidents
from compliance import jobs as report_jobs
from core import jobs


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def write_checkpoint_task() -> int:
    """Beat runs this every CHECKPOINT_INTERVAL_SECONDS; returns the checkpointed sequence number."""
    return checkpoints.write_checkpoint().checkpoint.seq


# Given back to the queue if its worker dies: a job delivered again re-runs if it is unfinished
# and is left alone if it finished (compliance.jobs.run_job).
@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def run_report_job_task(job_id: int) -> str:
    return report_jobs.run_job(job_id).status


@shared_task(acks_late=True)
def resend_stranded_report_jobs_task() -> list[int]:
    """Send again every report job nobody works on (beat, every CHECK_SWEEP_SECONDS): its task was
    lost to a broker outage, or its worker died."""
    stranded = report_jobs.stranded_jobs(
        now=timezone.now(),
        queued_for=settings.CHECK_RESEND_AFTER_SECONDS,
        running_for=settings.CELERY_TASK_TIME_LIMIT + settings.CHECK_RESEND_AFTER_SECONDS,
    )
    ids = list(stranded.values_list("pk", flat=True)[:100])
    for job_id in ids:
        run_report_job_task.delay(job_id)
    return ids


@shared_task(acks_late=True)
def remind_incidents_task() -> list[int]:
    """Beat, hourly: mail risk officers once about each incident whose art. 73 report is due soon."""
    return incidents.remind_incidents()


jobs.register(report_jobs.SEND, run_report_job_task.delay)
