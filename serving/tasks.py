"""Celery tasks of the serving app."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from serving import seals


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def seal_predictions_task() -> int:
    sealed = 0
    while (seal := seals.seal_predictions()) is not None:
        sealed += seal.tree_size
    return sealed
