"""Celery tasks of the compliance app."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from compliance import checkpoints


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def write_checkpoint_task() -> int:
    """Beat runs this every CHECKPOINT_INTERVAL_SECONDS; returns the checkpointed sequence number."""
    return checkpoints.write_checkpoint().checkpoint.seq
