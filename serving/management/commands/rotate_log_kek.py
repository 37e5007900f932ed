from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from serving import personal


class Command(BaseCommand):
    help = (
        "Re-wrap every live data key of personal data under the current LOG_KEK (set LOG_KEK_PREVIOUS to the old "
        "key while running it). The prediction log is not touched."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        rotated = personal.rotate_kek()
        self.stdout.write(f"{rotated} data key(s) re-wrapped under the current LOG_KEK.")
