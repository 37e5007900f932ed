from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from serving import seals


class Command(BaseCommand):
    help = (
        "Seal every unsealed prediction record now (beat does it every SEAL_INTERVAL_SECONDS): Merkle seals of at "
        "most SEAL_BATCH_SIZE records each, their roots written to the audit trail."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=None, help="records per seal (default: SEAL_BATCH_SIZE)")

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size = options["batch_size"]
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be a positive number of records.")
        run = seals.seal_all(batch_size=batch_size)
        if not run.seals:
            self.stdout.write("Nothing to seal: every prediction record is sealed.")
            return
        self.stdout.write(f"Sealed {run.records} prediction record(s) in {run.seals} seal(s).")
