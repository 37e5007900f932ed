from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from compliance.checkpoints import verify_checkpoints
from compliance.evidence import verify_evidence
from core.audit import verify_chain
from governance import integrity
from serving.seals import verify_seals


class Command(BaseCommand):
    help = (
        "Suspend servable versions whose approval no longer holds; recompute the audit chain, the prediction "
        "seals and every evidence row (and the signed checkpoints); exit non-zero naming the first broken one."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--checkpoints",
            metavar="DIR",
            help="also verify the signed checkpoints in DIR/checkpoints.log against the witness's cosigned copies, "
            "that the newest is recent, and that the chain still holds each head",
        )
        parser.add_argument(
            "--witness",
            metavar="DIR",
            help="the witness's directory (default: CHECKPOINT_WITNESS_DIR, or else DIR-witness beside DIR)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        broken: list[str] = []
        result = verify_chain()
        if not result.ok:
            # A cut-off tail breaks the chain too: the checkpoint it contradicts says what was lost.
            against = (
                verify_checkpoints(options["checkpoints"], options.get("witness"))
                if options.get("checkpoints")
                else None
            )
            lost = f"\nCheckpoints BROKEN: {against.message}" if against and not against.ok else ""
            raise CommandError(f"Audit trail BROKEN: {result.message}{lost}")
        self.stdout.write(f"Audit trail OK: {result.message}")
        sealed = verify_seals()
        if sealed.ok:
            self.stdout.write(f"Prediction log OK: {sealed.message}")
        else:
            broken.append(f"Prediction log BROKEN: {sealed.message}")
        rows = verify_evidence()
        if rows.ok:
            self.stdout.write(f"Evidence OK: {rows.message}")
        else:
            broken.append(rows.message)
        # Then the data plane: a servable version whose approval no longer holds stops answering
        # (after the rows were compared, so the changed row is named). A suspension is tampering
        # found, not news: the command then exits non-zero.
        for suspension in integrity.suspend_void_versions():
            changed = ", ".join(suspension.changed)
            self.stdout.write(f"Suspended {suspension.version}: its approval no longer holds ({changed} changed)")
            broken.append(f"{suspension.version} suspended ({changed} changed)")
        if options.get("checkpoints"):
            against = verify_checkpoints(options["checkpoints"], options.get("witness"))
            if against.ok:
                self.stdout.write(f"Checkpoints OK: {against.message}")
            else:
                broken.append(f"Checkpoints BROKEN: {against.message}")
        if broken:
            found = f"{len(broken)} problem{'s' if len(broken) > 1 else ''}"
            raise CommandError("\n".join(broken) + f"\nVerification FAILED: {found} found (above).")
        self.stdout.write("Verification PASSED: chain, prediction log, ledger rows and approvals all hold.")
