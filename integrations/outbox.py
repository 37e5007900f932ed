"""The webhook outbox is the audit trail itself: every change the webhooks announce already
writes an audit event in its own transaction. After such a transaction commits, a task turns the
events past a stored watermark into deliveries (one per subscribed endpoint); beat runs the same
sweep every WEBHOOK_SWEEP_SECONDS. So a broker outage or a crashed worker delays a webhook and
loses none, and the workflow never waits on, or fails because of, a receiver."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from core import jobs
from core.models import AuditChainHead, AuditEvent
from integrations import events
from integrations.models import DeliveryStatus, OutboxCursor, WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)
BATCH = 500

# The dispatch task, registered by integrations.tasks (the outbox never imports the tasks).
DISPATCH = jobs.job("webhook_dispatch", __name__)


def _nudge() -> None:
    send = jobs.JOBS.find(DISPATCH)
    if send is not None:
        send()


def wake_on_commit(event: AuditEvent) -> None:
    """core.audit listener: after a transaction that recorded an event the webhooks map commits,
    ask for a dispatch (idempotent, so a second ask in one transaction costs one empty read).
    `robust`: a broker that is down is logged, never raised into the request that committed; the
    beat sweep delivers later."""
    if event.action in events.MAPPED_ACTIONS:
        transaction.on_commit(_nudge, robust=True)


def chain_head_seq() -> int:
    head = AuditChainHead.objects.filter(pk=1).values_list("seq", flat=True).first()
    return int(head or 0)


@transaction.atomic
def dispatch_events(*, now: datetime | None = None, limit: int = BATCH) -> list[int]:
    """Create the deliveries for the mapped audit events past the watermark; returns their ids.
    Idempotent (one delivery per event and endpoint, a database constraint); concurrent sweeps
    queue on the cursor row."""
    now = now or timezone.now()
    cursor, _ = OutboxCursor.objects.select_for_update().get_or_create(pk=1)
    # Read the head first: every event up to it has committed (an append holds the head's lock
    # until its transaction ends), so nothing below the new watermark can still appear.
    head = chain_head_seq()
    batch = list(
        AuditEvent.objects.filter(seq__gt=cursor.last_seq, seq__lte=head, action__in=events.MAPPED_ACTIONS).order_by(
            "seq"
        )[:limit]
    )
    endpoints = list(WebhookEndpoint.objects.filter(is_active=True))
    created: list[WebhookDelivery] = []
    for event in batch:
        event_type = events.event_type_of(event.action)
        subscribed = [e for e in endpoints if event_type in e.event_types and e.start_seq < event.seq]
        if not subscribed:
            continue
        body = events.payload(event)
        for endpoint in subscribed:
            created.append(
                WebhookDelivery(
                    endpoint=endpoint,
                    message_id=events.message_id(event),
                    event_type=event_type or "",
                    audit_seq=event.seq,
                    payload=body,
                    status=DeliveryStatus.PENDING,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
    WebhookDelivery.objects.bulk_create(created, ignore_conflicts=True)
    cursor.last_seq = batch[-1].seq if len(batch) == limit else max(head, cursor.last_seq)
    cursor.save(update_fields=["last_seq", "updated_at"])
    seqs = {d.audit_seq for d in created}
    return list(
        WebhookDelivery.objects.filter(audit_seq__in=seqs, status=DeliveryStatus.PENDING).values_list("pk", flat=True)
    )


def backlog() -> int:
    """Mapped audit events not yet turned into deliveries (a metric)."""
    last = OutboxCursor.objects.filter(pk=1).values_list("last_seq", flat=True).first() or 0
    return AuditEvent.objects.filter(seq__gt=last, action__in=events.MAPPED_ACTIONS).count()
