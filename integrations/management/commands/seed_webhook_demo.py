"""manage.py seed_webhook_demo --user USERNAME: the demo's webhook endpoint and one delivery
(called by seed_demo)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from integrations.demo import seed_webhook_demo


class Command(BaseCommand):
    help = "Create the demo webhook endpoint and deliver the latest event to a throwaway local listener."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="the risk officer who creates the endpoint")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = get_user_model().objects.get(username=options["user"])
        self.stdout.write(seed_webhook_demo(actor=actor))
