from __future__ import annotations

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from compliance.log_retention import retire_expired_months
from core.errors import DomainError


class Command(BaseCommand):
    help = (
        "PostgreSQL, as the owner (MIGRATION_DATABASE_URL): drop the prediction log's months past retention whose "
        "records are all sealed, whose seals a verified signed checkpoint covers, and whose models no legal hold "
        "holds; each retirement is an audit event. Names the months kept and why."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=None, help="retention in days (default: the policy's)")
        parser.add_argument("--month", default=None, help="only this month (YYYY-MM)")
        parser.add_argument("--checkpoints", metavar="DIR", default=None, help="default: CHECKPOINT_DIR")

    def handle(self, *args: Any, **options: Any) -> None:
        only = None
        if options["month"]:
            try:
                only = date.fromisoformat(options["month"] + "-01")
            except ValueError as exc:
                raise CommandError("--month is YYYY-MM.") from exc
        if options["days"] is not None and options["days"] < 183:
            raise CommandError("--days is at least 183 (six months: the AI Act's least for a log).")
        try:
            run = retire_expired_months(retention_days=options["days"], checkpoints=options["checkpoints"], only=only)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        for month in run.retired:
            self.stdout.write(f"Retired {month}")
        for why in run.kept:
            self.stdout.write(f"Kept {why}")
        if not run.retired and not run.kept:
            self.stdout.write("No month of the prediction log is past retention.")
