"""The demo's integrations. The webhook: an endpoint subscribed to every event type, and one
delivery of the demo's latest deployment, received by a throwaway listener in this process (so
the admin shows a delivered webhook with its signed attempt). Demo only: it backdates the
endpoint's start."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django.conf import settings
from django.db import transaction

from core import audit
from core.actors import Actor
from core.models import AuditEvent
from integrations import events, outbox, webhooks
from integrations.models import WebhookEndpoint


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def seed_webhook_demo(*, actor: Actor) -> str:
    """Create the demo endpoint and deliver the latest mapped event to it; returns a summary."""
    previous = settings.WEBHOOK_ALLOW_PRIVATE
    settings.WEBHOOK_ALLOW_PRIVATE = True  # the demo receiver listens on 127.0.0.1
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/demo-ci-hook"
        endpoint, _ = webhooks.create_endpoint(
            actor=actor, name="demo CI pipeline", url=url, event_types=events.ALL_EVENT_TYPES
        )
        latest = AuditEvent.objects.filter(action__in=events.MAPPED_ACTIONS).order_by("-seq").first()
        if latest is not None:
            with transaction.atomic():
                WebhookEndpoint.objects.filter(pk=endpoint.pk).update(start_seq=latest.seq - 1)
                # (the replay start is part of the endpoint's governed state: recorded like any change)
                audit.record(
                    audit.WEBHOOK_ENDPOINT_CHANGED, actor=actor, target=endpoint, data={"start_seq": latest.seq - 1}
                )
                outbox.OutboxCursor.objects.update_or_create(pk=1, defaults={"last_seq": latest.seq - 1})
        delivered = [webhooks.attempt_delivery(pk) for pk in outbox.dispatch_events()]
    finally:
        server.shutdown()
        server.server_close()
        settings.WEBHOOK_ALLOW_PRIVATE = previous
    ok = sum(1 for a in delivered if a is not None and a.succeeded)
    return f"webhook endpoint {endpoint.name!r}: {ok} of {len(delivered)} deliveries accepted"
