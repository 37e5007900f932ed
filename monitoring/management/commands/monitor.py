from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from monitoring import services, shadow
from monitoring.models import Level


class Command(BaseCommand):
    help = "Compute the monitoring windows that are due, now (folds sealed predictions first)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", help="Only this registered model.")

    def handle(self, *args: Any, **options: Any) -> None:
        windows = services.monitor(model_name=options.get("model"))
        for window in windows:
            alerts = [a for a in window.alerts if a["level"] == Level.ALERT]
            self.stdout.write(f"{window}: {window.rows} rows, {len(alerts)} alert(s)")
        self.stdout.write(f"{len(windows)} window(s) computed.")
        comparisons = shadow.replay_due()
        for comparison in comparisons:
            self.stdout.write(f"{comparison}: {comparison.rows} rows replayed, agreement {comparison.agreement}")
        if comparisons:
            self.stdout.write(f"{len(comparisons)} shadow window(s) compared.")
