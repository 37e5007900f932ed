"""Editing the database as a DBA would: the ledger's triggers dropped first (core.triggers), so a
test can show that verification still names what was changed behind the services."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

from core.triggers import create_sql, drop_sql
from lifecycle.triggers import RULES as LIFECYCLE_RULES
from serving.triggers import RULES as SERVING_RULES

RULES = LIFECYCLE_RULES + SERVING_RULES


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
