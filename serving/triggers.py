"""What the database refuses on serving's governed tables, whoever asks (core.triggers): a
revoked API key stays revoked, a legal hold is released (never deleted, never put back), and an
erased subject key stays erased (its id is evidence of the erasure)."""

from __future__ import annotations

from core.triggers import Rule, changed

RULES = [
    Rule(
        "ledger_apikey_revoked_once",
        "serving_apikey",
        "UPDATE",
        f"(OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS DISTINCT FROM OLD.revoked_at) OR {changed('key_hash')}",
        "ledger: an API key's hash never changes and a revoked key stays revoked",
    ),
    Rule("ledger_apikey_no_delete", "serving_apikey", "DELETE", "1 = 1", "ledger: API keys are revoked, never deleted"),
    Rule(
        "ledger_legalhold_released_once",
        "serving_legalhold",
        "UPDATE",
        f"(OLD.released_at IS NOT NULL AND NEW.released_at IS DISTINCT FROM OLD.released_at) "
        f"OR {changed('model_name', 'reason', 'placed_by_id', 'placed_at')}",
        "ledger: a legal hold is released once and otherwise never changes",
    ),
    Rule(
        "ledger_legalhold_no_delete",
        "serving_legalhold",
        "DELETE",
        "1 = 1",
        "ledger: legal holds are released, never deleted",
    ),
    Rule(
        "ledger_subjectkey_erased_stays",
        "serving_subjectkey",
        "UPDATE",
        "OLD.erased_at IS NOT NULL AND (NEW.erased_at IS DISTINCT FROM OLD.erased_at OR NEW.wrapped IS NOT NULL)",
        "ledger: an erased subject key stays erased",
    ),
    Rule(
        "ledger_subjectkey_no_delete",
        "serving_subjectkey",
        "DELETE",
        "OLD.erased_at IS NOT NULL",
        "ledger: an erased subject key's row is evidence of the erasure and is never deleted",
    ),
]
