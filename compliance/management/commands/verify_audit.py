from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.audit import verify_chain


class Command(BaseCommand):
    help = "Recompute the audit chain and the prediction seals; exit non-zero naming the first broken one."

    def handle(self, *args: Any, **options: Any) -> None:
        from serving.seals import verify_seals

        result = verify_chain()
        if not result.ok:
            raise CommandError(f"Audit trail BROKEN: {result.message}")
        self.stdout.write(f"Audit trail OK: {result.message}")
        sealed = verify_seals()
        if not sealed.ok:
            raise CommandError(f"Prediction log BROKEN: {sealed.message}")
        self.stdout.write(f"Prediction log OK: {sealed.message}")
