from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import DomainError
from core.role_changes import grant_role, revoke_role
from core.roles import ALL_ROLES


class Command(BaseCommand):
    help = "Grant (or with --revoke, remove) a role, with a justification; recorded in the audit trail."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("role", choices=ALL_ROLES)
        parser.add_argument("--justification", required=True)
        parser.add_argument("--revoke", action="store_true", help="remove the role instead")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"There is no user {options['username']!r}.")
        change = revoke_role if options["revoke"] else grant_role
        try:
            change(user, options["role"], actor=None, justification=options["justification"])
        except DomainError as exc:
            raise CommandError(exc.message) from None
        done = "Removed" if options["revoke"] else "Granted"
        self.stdout.write(f"{done} {options['role']} {'from' if options['revoke'] else 'to'} {user.username}.")
