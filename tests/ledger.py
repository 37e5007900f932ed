"""Editing the database as a DBA would: the ledger's triggers dropped first (core.triggers), so a
test can show that verification still names what was changed behind the services."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

from core.triggers import create_sql, drop_sql
from governance.triggers import RULES as GOVERNANCE_RULES
from lifecycle.triggers import RULES as LIFECYCLE_RULES
from serving.triggers import RULES as SERVING_RULES

RULES = LIFECYCLE_RULES + GOVERNANCE_RULES + SERVING_RULES


@contextmanager
def triggers_dropped() -> Iterator[None]:
    """Drop every ledger trigger for the block; put them back after it."""
    vendor = connection.vendor
    with connection.cursor() as cursor:
        for rule in RULES:
            for statement in drop_sql(rule, vendor):
                cursor.execute(statement)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            for rule in RULES:
                for statement in create_sql(rule, vendor):
                    cursor.execute(statement)


def ensure_triggers() -> None:
    """SQLite: put back the triggers a transactional test's flush needed dropped (cheap, idempotent)."""
    with connection.cursor() as cursor:
        for rule in RULES:
            for statement in create_sql(rule, "sqlite", if_missing=True):
                cursor.execute(statement)


def drop_delete_triggers() -> None:
    """SQLite: before a transactional test's flush (DELETE FROM every table), which the
    never-deleted rules would refuse; PostgreSQL's TRUNCATE fires no row trigger."""
    with connection.cursor() as cursor:
        for rule in RULES:
            if rule.operation == "DELETE":
                for statement in drop_sql(rule, "sqlite"):
                    cursor.execute(statement)
