from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from lifecycle import dataset_store
from serving import subject_keys


class Command(BaseCommand):
    help = (
        "Re-wrap every live data key of personal data under the current LOG_KEK (set LOG_KEK_PREVIOUS to the old "
        "key while running it): the log's subject keys and the datasets' keys. The prediction log and the dataset "
        "files are not touched."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        datasets = dataset_store.rotate_dataset_keys()
        rotated = subject_keys.rotate_kek()  # (re-wraps any dataset key made meanwhile too)
        self.stdout.write(f"{rotated} data key(s) re-wrapped under the current LOG_KEK.")
        self.stdout.write(f"{datasets} dataset key(s) re-wrapped under the current LOG_KEK.")
