from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from compliance.db_roles import grant_runtime_role


class Command(BaseCommand):
    help = (
        "PostgreSQL: create the application's runtime role (it owns nothing) and grant it what it may do; "
        "run as the owner (MIGRATION_DATABASE_URL) after every migrate."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("role", help="the role the application connects as (DATABASE_URL's user)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            done = grant_runtime_role(options["role"])
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Granted {options['role']}: {len(done)} statements.")
