"""Webhooks: Standard Webhooks signatures checked by an independent few lines, retries with
backoff and every attempt recorded, a failing or unreachable receiver never blocks the workflow,
and internal addresses refused unless WEBHOOK_ALLOW_PRIVATE is set."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import pytest

from core import audit, jobs
from core.models import AuditEvent
from governance import workflow
from integrations import outbox, tasks, webhooks
from integrations.errors import IntegrationError
from integrations.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from lifecycle.models import Status

JUSTIFICATION = "Checks read; the fairness gaps are within the committee's tolerance."


def verify_standard_webhook(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The receiver's side, written from the spec alone: HMAC-SHA256 over id.timestamp.body with
    the base64 secret after whsec_, compared with each space-separated v1 signature."""
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = headers["webhook-id"].encode() + b"." + headers["webhook-timestamp"].encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        version == "v1" and hmac.compare_digest(sig, expected)
        for version, _, sig in (s.partition(",") for s in headers["webhook-signature"].split(" "))
    )


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


@pytest.fixture
def endpoint(receiver: Any, risk_officer: Any) -> Any:
    created, secret = webhooks.create_endpoint(
        actor=risk_officer,
        name="ci",
        url=receiver.url,
        event_types=["model_version.approved", "model_version.deployed", "model_version.submitted"],
    )
    return created, secret


def approve(version: Any, officer: Any, capture: Any) -> Any:
    with capture(execute=True):
        workflow.approve_version(version.pk, actor=officer, justification=JUSTIFICATION)
    version.refresh_from_db()
    return version


def test_approval_is_delivered_signed_to_a_real_receiver(
    in_review, endpoint, receiver, risk_officer, django_capture_on_commit_callbacks, eager_tasks
):
    _, secret = endpoint
    version = approve(in_review, risk_officer, django_capture_on_commit_callbacks)
    assert version.status == Status.APPROVED
    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    headers = lower(request["headers"])
    assert verify_standard_webhook(secret, headers, request["body"])
    assert not verify_standard_webhook(secret, headers, request["body"] + b" ")
    body = json.loads(request["body"])
    assert body["type"] == "model_version.approved"
    assert body["data"]["target"] == {
        "type": "lifecycle.modelversion",
        "id": str(version.pk),
        "name": str(version),
        "model": "credit-risk",
        "version": version.version,
    }
    event = AuditEvent.objects.get(seq=body["data"]["audit_event"]["seq"])
    assert event.action == "governance.version.approved" and headers["webhook-id"] == f"msg_{event.hash[:32]}"
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.DELIVERED
    attempt = delivery.attempt_set.get()
    assert attempt.status_code == 200 and attempt.latency_ms > 0


def test_events_before_the_endpoint_existed_are_not_sent(in_review, receiver, risk_officer, eager_tasks):
    webhooks.create_endpoint(actor=risk_officer, name="late", url=receiver.url, event_types=["model_version.submitted"])
    assert outbox.dispatch_events() == []  # the submission happened before the endpoint
    assert receiver.requests == []


def test_a_500_receiver_is_retried_with_backoff_and_every_attempt_is_recorded(
    in_review, endpoint, receiver, risk_officer, django_capture_on_commit_callbacks, eager_tasks, settings
):
    receiver.status = 500
    version = approve(in_review, risk_officer, django_capture_on_commit_callbacks)
    assert version.status == Status.APPROVED  # the workflow did not wait for or fail on the receiver
    delivery = WebhookDelivery.objects.get()
    first_retry = delivery.next_attempt_at
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
    gap1 = (first_retry - delivery.created_at).total_seconds()
    assert 0.9 * settings.WEBHOOK_RETRY_BASE_SECONDS <= gap1 <= 1.1 * settings.WEBHOOK_RETRY_BASE_SECONDS + 1
    assert webhooks.attempt_delivery(delivery.pk, now=first_retry - timedelta(seconds=1)) is None  # not yet due

    second = webhooks.attempt_delivery(delivery.pk, now=first_retry)
    assert second is not None and second.status_code == 500
    delivery.refresh_from_db()
    gap2 = (delivery.next_attempt_at - first_retry).total_seconds()
    assert 1.8 * settings.WEBHOOK_RETRY_BASE_SECONDS <= gap2 <= 2.2 * settings.WEBHOOK_RETRY_BASE_SECONDS + 1

    receiver.status = 204
    third = webhooks.attempt_delivery(delivery.pk, now=delivery.next_attempt_at)
    assert third is not None and third.succeeded
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    codes = list(WebhookAttempt.objects.filter(delivery=delivery).values_list("number", "status_code"))
    assert codes == [(1, 500), (2, 500), (3, 204)]
    assert len(receiver.requests) == 3
    ids = {lower(r["headers"])["webhook-id"] for r in receiver.requests}
    assert len(ids) == 1  # the same message id on every retry


def test_retries_stop_after_the_window(
    in_review, endpoint, receiver, risk_officer, django_capture_on_commit_callbacks, eager_tasks, settings
):
    settings.WEBHOOK_RETRY_WINDOW_SECONDS = 100
    receiver.status = 503
    approve(in_review, risk_officer, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    for _ in range(10):
        if delivery.status != DeliveryStatus.PENDING:
            break
        webhooks.attempt_delivery(delivery.pk, now=delivery.next_attempt_at)
        delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempts == WebhookAttempt.objects.filter(delivery=delivery).count() >= 2


def test_an_unreachable_receiver_or_a_broker_outage_never_blocks_the_workflow(
    in_review, endpoint, receiver, risk_officer, django_capture_on_commit_callbacks, eager_tasks, monkeypatch
):
    def broker_down() -> None:
        raise ConnectionError("broker unreachable")

    monkeypatch.setitem(jobs.JOBS._provided, outbox.DISPATCH, broker_down)
    version = approve(in_review, risk_officer, django_capture_on_commit_callbacks)
    assert version.status == Status.APPROVED
    assert WebhookDelivery.objects.count() == 0 and receiver.requests == []
    # the beat sweep reads the audit trail past the watermark: nothing was lost
    assert tasks.webhook_sweep_task() == 1
    assert WebhookDelivery.objects.get().status == DeliveryStatus.DELIVERED
    assert len(receiver.requests) == 1
    assert tasks.webhook_sweep_task() == 0  # and nothing is sent twice


def test_a_refused_connection_is_an_attempt_with_its_error(
    in_review, risk_officer, settings, django_capture_on_commit_callbacks, eager_tasks
):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    webhooks.create_endpoint(
        actor=risk_officer,
        name="down",
        url="http://127.0.0.1:9/nothing-listens",
        event_types=["model_version.approved"],
    )
    version = approve(in_review, risk_officer, django_capture_on_commit_callbacks)
    assert version.status == Status.APPROVED
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None and "Connection" in attempt.error


def test_410_gone_disables_the_endpoint(
    in_review, endpoint, receiver, risk_officer, django_capture_on_commit_callbacks, eager_tasks
):
    receiver.status = 410
    approve(in_review, risk_officer, django_capture_on_commit_callbacks)
    created, _ = endpoint
    created.refresh_from_db()
    assert not created.is_active and "410" in created.disabled_reason
    assert WebhookDelivery.objects.get().status == DeliveryStatus.CANCELLED
    assert AuditEvent.objects.filter(action=audit.WEBHOOK_ENDPOINT_DISABLED).count() == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.0.0.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://192.168.1.10/hook",
    ],
)
def test_internal_addresses_are_refused_without_the_setting(url, risk_officer, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(IntegrationError, match="WEBHOOK_ALLOW_PRIVATE"):
        webhooks.create_endpoint(actor=risk_officer, name="x", url=url, event_types=["model_version.approved"])


@pytest.mark.parametrize("url", ["ftp://example.org/hook", "file:///etc/passwd", "http://user:pw@example.org/"])
def test_only_plain_http_and_https_urls(url, risk_officer, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    with pytest.raises(IntegrationError):
        webhooks.create_endpoint(actor=risk_officer, name="x", url=url, event_types=["model_version.approved"])


def test_a_private_address_is_refused_again_at_delivery_time(
    in_review, endpoint, receiver, risk_officer, django_capture_on_commit_callbacks, eager_tasks, settings
):
    settings.WEBHOOK_ALLOW_PRIVATE = False  # switched off after the endpoint was saved
    approve(in_review, risk_officer, django_capture_on_commit_callbacks)
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None and "internal address" in attempt.error
    assert receiver.requests == []


def test_only_risk_officers_manage_endpoints(data_scientist, receiver):
    from core.errors import Forbidden

    with pytest.raises(Forbidden):
        webhooks.create_endpoint(
            actor=data_scientist, name="x", url=receiver.url, event_types=["model_version.approved"]
        )


def test_every_mapped_action_is_a_known_code():
    from integrations.events import EVENT_TYPES

    assert len(EVENT_TYPES) == 13
    assert all(code.count(".") == 2 for code in EVENT_TYPES)


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254 (cloud metadata)
        "64:ff9b::a00:5",  # NAT64 of 10.0.0.5
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b:1::a00:5",  # local-use NAT64 prefix (RFC 8215)
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002:c0a8:10a::1",  # 6to4 of 192.168.1.10
        "2001:0:4136:e378:8000:63bf:f5ff:fffa",  # Teredo, client 10.0.0.5
        "::ffff:10.0.0.5",  # IPv4-mapped
        "::a00:5",  # IPv4-compatible (deprecated)
    ],
)
def test_ipv6_addresses_embedding_an_internal_ipv4_are_refused(address, risk_officer, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(IntegrationError, match="internal address"):
        webhooks.create_endpoint(
            actor=risk_officer, name="x", url=f"http://[{address}]/hook", event_types=["model_version.approved"]
        )


@pytest.mark.parametrize("address", ["64:ff9b::808:808", "2002:808:808::1"])
def test_ipv6_transition_addresses_embedding_a_global_ipv4_are_allowed(address):
    from integrations import transport

    assert transport.resolve(f"http://[{address}]/hook", allow_private=False).address == address


def test_a_redirect_is_not_followed_and_is_a_failed_attempt_that_says_so(receiver):
    from integrations import transport

    receiver.status = 302
    response = transport.post(receiver.url, body="{}", headers={}, timeout=5)
    assert response.status == 302 and "redirect" in response.error and "not followed" in response.error
    assert len(receiver.requests) == 1
