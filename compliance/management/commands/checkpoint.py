from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.checkpoints import CheckpointError


class Command(BaseCommand):
    help = (
        "Write a signed checkpoint of the audit chain's head and the latest prediction seal now, appended to "
        "CHECKPOINT_DIR/checkpoints.log and cosigned by the witness; with --public-key (or --witness-public-key), "
        "print the verifier key instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--public-key",
            action="store_true",
            help="print the log's verifier key (<name>+<key hash>+<base64 key>) that note verifiers take "
            "(CHECKPOINT_PUBLIC_KEY), and exit",
        )
        parser.add_argument(
            "--witness-public-key",
            action="store_true",
            help="print the witness's cosignature verifier key (CHECKPOINT_WITNESS_PUBLIC_KEY), and exit",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from compliance import checkpoints

        try:
            if options["public_key"]:
                try:
                    self.stdout.write(checkpoints.signing_key().verifier.vkey)
                except CheckpointError:
                    self.stdout.write(checkpoints.public_key().vkey)
                return
            if options["witness_public_key"]:
                try:
                    self.stdout.write(checkpoints.witness_key().verifier.vkey)
                except CheckpointError:
                    self.stdout.write(checkpoints.witness_public_key().vkey)
                return
            written = checkpoints.write_checkpoint()
        except CheckpointError as exc:
            raise CommandError(exc.message)
        self.stdout.write(f"Checkpoint appended to {written.path}:")
        self.stdout.write(written.note, ending="")
        self.stdout.write(
            f"Cosigned by the witness {checkpoints.witness_public_key().name} in {checkpoints.witness_dir()}."
        )
