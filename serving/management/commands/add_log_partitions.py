from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from serving import partitions


class Command(BaseCommand):
    help = (
        "PostgreSQL: make the prediction log's partitions for this UTC month and the next ones if missing "
        "(beat does it daily); list the partitions."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--ahead", type=int, default=partitions.MONTHS_AHEAD, help="months after this one (default: %(default)s)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not 0 <= options["ahead"] <= 24:
            raise CommandError("--ahead is a number of months from 0 to 24.")
        if not partitions.is_partitioned():
            self.stdout.write("The prediction log is not partitioned (PostgreSQL only): nothing to do.")
            return
        for name in partitions.add_partitions(options["ahead"]):
            self.stdout.write(f"Created {name}")
        names = ", ".join(p.name for p in partitions.partitions())
        self.stdout.write(f"Partitions: {names}")
