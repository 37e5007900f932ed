from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.errors import DomainError
from lifecycle import dataset_store


class Command(BaseCommand):
    help = (
        "Encrypt at rest every dataset stored in clear before encryption at rest: each one's verified "
        "bytes are written encrypted under a key of its own (wrapped by LOG_KEK), audited, and the clear file is "
        "deleted. Run it when no batch job over a stored dataset is queued or running. Safe to run again."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        encrypted, failed = 0, []
        for dataset_id in dataset_store.datasets_in_clear():
            try:
                encrypted += dataset_store.encrypt_stored_dataset(dataset_id)
            except DomainError as exc:  # a changed file: named, and the others still encrypted
                failed.append(exc.message)
        self.stdout.write(f"{encrypted} dataset(s) encrypted at rest.")
        if failed:
            raise CommandError(f"{len(failed)} dataset(s) left in clear: " + " ".join(failed))
