"""Celery tasks: thin interfaces that take ids and call one function."""

from __future__ import annotations

from celery import shared_task

from governance import checks


@shared_task(acks_late=True, reject_on_worker_lost=True)
def verify_artifact_task(version_id: int) -> str:
    return checks.verify_stored_artifact(version_id)
