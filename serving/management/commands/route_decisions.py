"""Route the decisions the oversight rules name into the human-oversight queue now (beat does it
every OVERSIGHT_ROUTE_SECONDS)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from serving import oversight


class Command(BaseCommand):
    help = "Route new decisions into the human-oversight queue by the models' oversight rules."

    def handle(self, *args: Any, **options: Any) -> None:
        routed = oversight.route_new_decisions()
        self.stdout.write(f"{routed} decision(s) routed to the oversight queue.")
