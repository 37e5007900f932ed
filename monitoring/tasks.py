"""Celery task: fold sealed records and compute the monitoring windows that are due."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from monitoring import services, shadow


@shared_task(acks_late=True, autoretry_for=(OperationalError, InterfaceError), retry_backoff=True, max_retries=3)
def monitor_task() -> int:
    """Beat, every MONITOR_INTERVAL_SECONDS."""
    return len(services.monitor()) + len(shadow.replay_due())


@shared_task(acks_late=True, autoretry_for=(OperationalError, InterfaceError), retry_backoff=True, max_retries=3)
def kpi_check_task() -> list[int]:
    """Compute the models' KPIs; a breach opens a finding."""
    from monitoring import kpis

    return kpis.check_kpis()
