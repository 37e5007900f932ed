"""Two database roles on PostgreSQL: the owner runs the migrations; the application runs as a
role that owns nothing, so it cannot disable a trigger, drop a constraint or rewrite history.
What it may do on each table follows the table's ledger class (core.ledger): on evidence only
SELECT and INSERT, plus the UPDATEs the workflow needs (a check's result, a deployment's end, a
record's seal: triggers guard them); governed state is never deleted; operational tables are the
application's to use fully. The audit trail is the exception: the role only reads it and appends
through one function (core.audit.APPEND_FUNCTIONS)."""

from __future__ import annotations

from django.db import connection
from psycopg import sql

from core import audit, ledger
from serving import partitions


def runtime_grants() -> dict[str, tuple[str, ...]]:
    """table -> what the runtime role may do on it, from each table's ledger class
    (core.ledger): evidence is SELECT and INSERT (plus the one UPDATE some need, guarded by
    triggers), governed state is never deleted, operational tables are the application's."""
    return {entry.model._meta.db_table: entry.runtime for entry in ledger.entries()}


def runtime_functions() -> tuple[str, ...]:
    """The database functions the runtime role may call (SECURITY DEFINER, owned by the owner):
    appending to the audit trail and locking its head (core.audit), and making the prediction
    log's next months' partitions (serving.partitions; it can never drop one)."""
    return audit.APPEND_FUNCTIONS + partitions.RUNTIME_FUNCTIONS


def grant_runtime_role(role: str) -> list[str]:
    """Create (if needed) and grant the runtime role; run as the owner after every migration.
    Returns the statements run."""
    if connection.vendor != "postgresql":
        raise RuntimeError("Database roles apply to PostgreSQL only.")
    ident = sql.Identifier(role)
    statements: list[sql.Composable] = []
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        if cursor.fetchone() is None:
            statements.append(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(ident))
        statements.append(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(ident))
        tables = connection.introspection.table_names(cursor)
        grants = runtime_grants()
        for table in tables:
            allowed = grants.get(table, ("SELECT", "INSERT", "UPDATE", "DELETE"))
            statements.append(sql.SQL("REVOKE ALL ON {} FROM {}").format(sql.Identifier(table), ident))
            statements.append(
                sql.SQL("GRANT {} ON {} TO {}").format(
                    sql.SQL(", ").join(sql.SQL(a) for a in allowed), sql.Identifier(table), ident
                )
            )
        statements.append(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(ident))
        # the audit trail is appended only through its function (no INSERT on the table)
        for function in runtime_functions():
            statements.append(sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(sql.SQL(function), ident))
        done = []
        for statement in statements:
            text = statement.as_string(cursor.connection)
            cursor.execute(text)
            done.append(text)
    return done
