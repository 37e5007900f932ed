from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from governance.audit import verify_chain


class Command(BaseCommand):
    help = "Recompute the audit trail's hash chain; exit non-zero naming the first broken event."

    def handle(self, *args: Any, **options: Any) -> None:
        result = verify_chain()
        if not result.ok:
            raise CommandError(f"Audit trail BROKEN: {result.message}")
        self.stdout.write(f"Audit trail OK: {result.message}")
