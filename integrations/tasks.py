"""Celery tasks of the integrations: thin, taking ids. Dispatch turns committed audit events into
deliveries; each delivery is one task per attempt; the beat sweep redoes both, so nothing depends
on a message reaching the broker."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError, transaction

from core import jobs
from integrations import outbox, webhooks

log = logging.getLogger(__name__)


def _send_deliveries(ids: list[int]) -> None:
    for delivery_id in ids:
        try:
            deliver_webhook_task.delay(delivery_id)
        except Exception:  # a broker outage: the sweep sends it later
            log.warning("could not enqueue webhook delivery %s; the sweep will send it", delivery_id, exc_info=True)


@shared_task(acks_late=True, autoretry_for=(OperationalError, InterfaceError), retry_backoff=True, max_retries=5)
def dispatch_webhooks_task() -> int:
    ids = outbox.dispatch_events()
    transaction.on_commit(lambda: _send_deliveries(ids))
    return len(ids)


@shared_task(acks_late=True, autoretry_for=(OperationalError, InterfaceError), retry_backoff=True, max_retries=5)
def deliver_webhook_task(delivery_id: int) -> int | None:
    attempt = webhooks.attempt_delivery(delivery_id)
    return attempt.status_code if attempt is not None else None


@shared_task(acks_late=True)
def webhook_sweep_task() -> int:
    """Beat: dispatch what the after-commit nudges missed, then send every due attempt."""
    outbox.dispatch_events()
    due = webhooks.due_deliveries()
    _send_deliveries(due)
    return len(due)


jobs.register(outbox.DISPATCH, dispatch_webhooks_task.delay)
