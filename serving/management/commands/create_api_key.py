from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import DomainError
from serving.services import create_api_key


class Command(BaseCommand):
    help = "Create an API key. The key is printed once, as the last line; only its hash is stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="Who or what the key is for.")
        parser.add_argument("--user", default=None, help="Bind the key to this user (it gets their roles).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            key, raw = create_api_key(actor=None, name=options["name"], username=options["user"])
        except DomainError as exc:
            raise CommandError(exc.message)
        bound = f" bound to user {key.user.username}" if key.user else " (bound to no user)"
        self.stdout.write(f"Created API key {key.name!r}{bound}. Store it now; it cannot be shown again.")
        self.stdout.write(raw)
