"""The database's own guard on governed state (docs/ledger.md): triggers that refuse what no
service does, written once for SQLite and PostgreSQL. Each app names its rules next to its
tables (lifecycle.triggers, serving.triggers); migrations install them, and a test drops them
as a DBA would to show that verification still names the change."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """Refuse an UPDATE (DELETE, INSERT) of `table` when `condition` holds, with `message`.
    `condition` is SQL over OLD and NEW valid on both databases (IS NOT compares NULLs)."""

    name: str
    table: str
    operation: str  # "UPDATE", "DELETE" or "INSERT" (NEW only)
    condition: str
    message: str


def changed(*columns: str) -> str:
    """SQL true when any of the columns changes (NULL-safe on both databases)."""
    return "(" + " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in columns) + ")"


def _sqlite_condition(condition: str) -> str:
    # SQLite spells IS DISTINCT FROM as IS NOT
    return condition.replace(" IS DISTINCT FROM ", " IS NOT ")


def create_sql(rule: Rule, vendor: str, *, if_missing: bool = False) -> list[str]:
    message = rule.message.replace("'", "''")
    if vendor == "postgresql":
        return [
            f"""CREATE OR REPLACE FUNCTION {rule.name}() RETURNS trigger AS $$
BEGIN
    IF {rule.condition} THEN
        RAISE EXCEPTION USING MESSAGE = '{message}', ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END;
$$ LANGUAGE plpgsql""",
            f"CREATE TRIGGER {rule.name} BEFORE {rule.operation} ON {rule.table} "
            f"FOR EACH ROW EXECUTE FUNCTION {rule.name}()",
        ]
    condition = _sqlite_condition(rule.condition)
    return [
        f"CREATE TRIGGER {'IF NOT EXISTS ' if if_missing else ''}{rule.name} BEFORE {rule.operation} ON {rule.table} "
        f"WHEN {condition} BEGIN SELECT RAISE(ABORT, '{message}'); END"
    ]


def drop_sql(rule: Rule, vendor: str) -> list[str]:
    if vendor == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {rule.name} ON {rule.table}", f"DROP FUNCTION IF EXISTS {rule.name}()"]
    return [f"DROP TRIGGER IF EXISTS {rule.name}"]


def install(rules: list[Rule], schema_editor: object) -> None:
    vendor = schema_editor.connection.vendor  # type: ignore[attr-defined]
    for rule in rules:
        for statement in create_sql(rule, vendor):
            schema_editor.execute(statement)  # type: ignore[attr-defined]


def uninstall(rules: list[Rule], schema_editor: object) -> None:
    vendor = schema_editor.connection.vendor  # type: ignore[attr-defined]
    for rule in rules:
        for statement in drop_sql(rule, vendor):
            schema_editor.execute(statement)  # type: ignore[attr-defined]
