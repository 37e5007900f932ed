"""Webhook endpoints (managed by risk officers, every change audited) and the delivery of one
attempt: claimed in a short transaction, sent outside any transaction, recorded afterwards.
Retries follow an exponential backoff with jitter until WEBHOOK_RETRY_WINDOW_SECONDS (24 h) after
the event; a 410 Gone disables the endpoint (Standard Webhooks, "Delivery success and failure")."""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core import audit
from core.actors import Actor, person, pk_of
from core.errors import Forbidden, NotFound
from core.roles import RISK_OFFICERS, has_role
from integrations import events, signing, transport
from integrations.errors import IntegrationError
from integrations.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from integrations.outbox import chain_head_seq

MAX_BACKOFF_SECONDS = 6 * 3600


def _require_officer(actor: Actor) -> None:
    if not (has_role(actor, RISK_OFFICERS) or getattr(actor, "is_superuser", False)):
        raise Forbidden("Only risk officers manage webhook endpoints.")


def _clean(name: str, url: str, event_types: list[str]) -> tuple[str, str, list[str]]:
    name, url = (name or "").strip(), (url or "").strip()
    if not name:
        raise IntegrationError("Name the endpoint.", field="name")
    transport.resolve(url)
    unknown = sorted(set(event_types) - set(events.ALL_EVENT_TYPES))
    if unknown:
        raise IntegrationError(f"Unknown event type(s): {', '.join(unknown)}.", field="event_types")
    if not event_types:
        raise IntegrationError("Choose at least one event type.", field="event_types")
    return name, url, [t for t in events.ALL_EVENT_TYPES if t in event_types]


@transaction.atomic
def create_endpoint(*, actor: Actor, name: str, url: str, event_types: list[str]) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its secret, which is shown this once."""
    _require_officer(actor)
    name, url, event_types = _clean(name, url, event_types)
    secret = signing.new_secret()
    endpoint = WebhookEndpoint.objects.create(
        name=name,
        url=url,
        secret=secret,
        event_types=event_types,
        start_seq=chain_head_seq(),
        created_by=person(actor) if pk_of(actor) else None,
        created_by_username=getattr(actor, "username", "") or "system",
    )
    audit.record(
        audit.WEBHOOK_ENDPOINT_CREATED, actor=actor, target=endpoint, data={"url": url, "event_types": event_types}
    )
    return endpoint, secret


@transaction.atomic
def update_endpoint(
    endpoint_id: int, *, actor: Actor, name: str, url: str, event_types: list[str], is_active: bool
) -> WebhookEndpoint:
    """Change an endpoint; disabling it cancels its pending deliveries."""
    _require_officer(actor)
    endpoint = WebhookEndpoint.objects.select_for_update().filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotFound("There is no such webhook endpoint.")
    name, url, event_types = _clean(name, url, event_types)
    before = {
        "name": endpoint.name,
        "url": endpoint.url,
        "event_types": endpoint.event_types,
        "active": endpoint.is_active,
    }
    endpoint.name, endpoint.url, endpoint.event_types, endpoint.is_active = name, url, event_types, is_active
    if is_active:
        endpoint.disabled_reason = ""
    elif not endpoint.disabled_reason:
        endpoint.disabled_reason = f"disabled by {getattr(actor, 'username', 'system')}"
    endpoint.save()
    if not is_active:
        _cancel_pending(endpoint)
    after = {"name": name, "url": url, "event_types": event_types, "active": is_active}
    audit.record(audit.WEBHOOK_ENDPOINT_CHANGED, actor=actor, target=endpoint, data={"before": before, "after": after})
    return endpoint


@transaction.atomic
def rotate_secret(endpoint_id: int, *, actor: Actor) -> str:
    """A new secret for the endpoint, shown once; the old one stops signing at once."""
    _require_officer(actor)
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
    endpoint.secret = signing.new_secret()
    endpoint.save(update_fields=["secret"])
    audit.record(audit.WEBHOOK_SECRET_ROTATED, actor=actor, target=endpoint, data={})
    return endpoint.secret


def _cancel_pending(endpoint: WebhookEndpoint) -> None:
    WebhookDelivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.CANCELLED, finished_at=timezone.now(), next_attempt_at=None
    )


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """Delay after the `attempt`-th failed attempt: base x 2^(attempt-1), +-10% jitter (so
    retries of many deliveries do not arrive together), at most 6 h; a longer Retry-After wins."""
    delay = min(settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
    delay *= random.uniform(0.9, 1.1)  # noqa: S311 (jitter, not security)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_BACKOFF_SECONDS))
    return delay


@transaction.atomic
def _claim(delivery_id: int, now: datetime) -> tuple[WebhookDelivery, int] | None:
    delivery = WebhookDelivery.objects.select_for_update().select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return None
    if delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
        return None
    if not delivery.endpoint.is_active:
        _cancel_pending(delivery.endpoint)
        return None
    delivery.attempts += 1
    # A lease: another sweep skips this delivery while the request is in flight; if this worker
    # dies, the delivery is due again once the lease ends.
    delivery.next_attempt_at = now + timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS + 60)
    delivery.save(update_fields=["attempts", "next_attempt_at"])
    return delivery, delivery.attempts


def attempt_delivery(delivery_id: int, *, now: datetime | None = None) -> WebhookAttempt | None:
    """Send one attempt of a due delivery and record it; None when it was not due (delivered,
    given up, cancelled, leased by another worker, or not yet time)."""
    now = now or timezone.now()
    claimed = _claim(delivery_id, now)
    if claimed is None:
        return None
    delivery, number = claimed
    endpoint = delivery.endpoint
    timestamp = int(time.time())
    response = transport.post(
        endpoint.url,
        body=delivery.payload,
        headers=signing.headers(
            endpoint.secret, msg_id=delivery.message_id, timestamp=timestamp, body=delivery.payload
        ),
        timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
    )
    return _record(delivery.pk, number, now, response)


@transaction.atomic
def _record(delivery_id: int, number: int, started: datetime, response: transport.Response) -> WebhookAttempt:
    delivery = WebhookDelivery.objects.select_for_update().select_related("endpoint").get(pk=delivery_id)
    attempt = WebhookAttempt.objects.create(
        delivery=delivery,
        number=number,
        started_at=started,
        status_code=response.status,
        latency_ms=response.latency_ms,
        error=response.error[:500],
        response_excerpt=response.body_excerpt[:500],
    )
    finished = timezone.now()
    if attempt.succeeded:
        delivery.status, delivery.finished_at, delivery.next_attempt_at = DeliveryStatus.DELIVERED, finished, None
    elif response.status == 410:
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=delivery.endpoint_id)
        endpoint.is_active, endpoint.disabled_reason = False, "the receiver answered 410 Gone"
        endpoint.save(update_fields=["is_active", "disabled_reason"])
        audit.record(
            audit.WEBHOOK_ENDPOINT_DISABLED, actor=None, target=endpoint, data={"reason": endpoint.disabled_reason}
        )
        delivery.status, delivery.finished_at, delivery.next_attempt_at = DeliveryStatus.CANCELLED, finished, None
        delivery.save(update_fields=["status", "finished_at", "next_attempt_at"])
        _cancel_pending(endpoint)
        return attempt
    else:
        retry_at = started + timedelta(seconds=backoff_seconds(number, response.retry_after))
        if retry_at > delivery.created_at + timedelta(seconds=settings.WEBHOOK_RETRY_WINDOW_SECONDS):
            delivery.status, delivery.finished_at, delivery.next_attempt_at = DeliveryStatus.FAILED, finished, None
        else:
            delivery.next_attempt_at = retry_at
    delivery.save(update_fields=["status", "finished_at", "next_attempt_at"])
    return attempt


def due_deliveries(*, now: datetime | None = None, limit: int = 200) -> list[int]:
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


@transaction.atomic
def redeliver(delivery_id: int, *, actor: Actor) -> WebhookDelivery:
    """A risk officer asks for a failed or cancelled delivery to be sent again now."""
    _require_officer(actor)
    delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
    delivery.status, delivery.finished_at = DeliveryStatus.PENDING, None
    delivery.next_attempt_at = timezone.now()
    delivery.created_at = timezone.now()  # a fresh retry window
    delivery.save(update_fields=["status", "finished_at", "next_attempt_at", "created_at"])
    return delivery
