"""manage.py deliver_webhooks: turn pending audit events into webhook deliveries and send every
due attempt now (beat does it every WEBHOOK_SWEEP_SECONDS; without a broker, run this)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from integrations import outbox, webhooks


class Command(BaseCommand):
    help = "Dispatch webhook events and send every due delivery attempt now."

    def handle(self, *args: Any, **options: Any) -> None:
        created = outbox.dispatch_events()
        sent = [webhooks.attempt_delivery(pk) for pk in webhooks.due_deliveries()]
        done = [a for a in sent if a is not None]
        ok = sum(1 for a in done if a.succeeded)
        self.stdout.write(f"{len(created)} new deliveries; {len(done)} attempts sent, {ok} accepted.")
