"""What the database refuses on a version's status, whoever asks (core.triggers): a version is
born a draft and its status moves only along the lifecycle table, governance.rules.TRANSITIONS,
the one definition the workflow asks too. The SQL is generated from that table, so a change to
it needs a migration that installs the rules again (docs/ledger.md)."""

from __future__ import annotations

from core.triggers import Rule
from governance.rules import TRANSITIONS
from lifecycle.models import Status


def _moves() -> str:
    # 'from>to' for every allowed move, in a stable order (the migration's SQL does not churn)
    return ", ".join(f"'{source}>{to}'" for source, to in sorted((str(s), str(t)) for s, t in TRANSITIONS))


RULES = [
    Rule(
        "ledger_version_status_moves",
        "lifecycle_modelversion",
        "UPDATE",
        f"NEW.status IS DISTINCT FROM OLD.status AND OLD.status || '>' || NEW.status NOT IN ({_moves()})",
        "ledger: a version's status moves only along the lifecycle table (governance.rules.TRANSITIONS)",
    ),
    Rule(
        "ledger_version_born_draft",
        "lifecycle_modelversion",
        "INSERT",
        f"NEW.status <> '{Status.DRAFT}'",
        "ledger: a version is registered as a draft (its status then moves only along the lifecycle table)",
    ),
]
