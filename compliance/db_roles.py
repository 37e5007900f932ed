"""Two database roles on PostgreSQL: the owner runs the migrations; the application runs as a
role that owns nothing, so it cannot disable a trigger, drop a constraint or rewrite history.
On the audit trail, the prediction log and the evidence tables it may only SELECT and INSERT,
plus the UPDATEs the workflow needs (a check's result, a deployment's end, a policy change, a
record's seal, the chain head moving forward: triggers guard the last three); never DELETE or
TRUNCATE. Every other table is the application's to use fully."""

from __future__ import annotations

from django.db import connection
from psycopg import sql

from core.models import AuditChainHead, AuditEvent
from governance.models import CheckRun, Decision, Deployment, FairnessRequirement, Finding, FindingComment, Policy
from monitoring.models import MonitoringWindow
from serving.models import (
    DecisionReview,
    Explanation,
    PredictionKey,
    PredictionLog,
    PredictionOutcome,
    PredictionSeal,
    SealTree,
)

# table -> what the runtime role may do on it
PROTECTED = {
    AuditEvent._meta.db_table: ("SELECT", "INSERT"),
    AuditChainHead._meta.db_table: ("SELECT", "INSERT", "UPDATE"),
    PredictionLog._meta.db_table: ("SELECT", "INSERT", "UPDATE"),
    PredictionSeal._meta.db_table: ("SELECT", "INSERT", "UPDATE"),
    SealTree._meta.db_table: ("SELECT", "INSERT"),
    PredictionOutcome._meta.db_table: ("SELECT", "INSERT"),
    PredictionKey._meta.db_table: ("SELECT", "INSERT"),
    Explanation._meta.db_table: ("SELECT", "INSERT"),
    DecisionReview._meta.db_table: ("SELECT", "INSERT"),
    Decision._meta.db_table: ("SELECT", "INSERT"),
    Deployment._meta.db_table: ("SELECT", "INSERT", "UPDATE"),
    CheckRun._meta.db_table: ("SELECT", "INSERT", "UPDATE"),
    Policy._meta.db_table: ("SELECT", "INSERT", "UPDATE"),
    FairnessRequirement._meta.db_table: ("SELECT", "INSERT", "UPDATE"),
    Finding._meta.db_table: ("SELECT", "INSERT", "UPDATE"),
    FindingComment._meta.db_table: ("SELECT", "INSERT"),
    MonitoringWindow._meta.db_table: ("SELECT", "INSERT"),
}


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
        for table in tables:
            allowed = PROTECTED.get(table, ("SELECT", "INSERT", "UPDATE", "DELETE"))
            statements.append(sql.SQL("REVOKE ALL ON {} FROM {}").format(sql.Identifier(table), ident))
            statements.append(
                sql.SQL("GRANT {} ON {} TO {}").format(
                    sql.SQL(", ").join(sql.SQL(a) for a in allowed), sql.Identifier(table), ident
                )
            )
        statements.append(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(ident))
        done = []
        for statement in statements:
            text = statement.as_string(cursor.connection)
            cursor.execute(text)
            done.append(text)
    return done
