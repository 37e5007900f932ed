"""The serving path's SQL: precompiled statements, run as server-side prepared statements on
PostgreSQL, and model instances converted from their rows exactly as the ORM would (the
backend's and the fields' converters), without its per-query compilation cost.

Why prepared: Django binds parameters on the client, so PostgreSQL parses and plans every
statement anew; planning the servable-version join took 0.29 ms, three times its execution.
A prepared statement is planned once per connection (psycopg keys it by the SQL text).

Why the request's first statement is the health check: with CONN_HEALTH_CHECKS, Django sends
`SELECT 1` before the first query of every request that reuses a connection. On the serving path
the first statement is sent directly instead. A read whose connection turns out to be dead is
retried once on a new one, which is what the health check would have done, one round trip
cheaper. A write is only retried when its caller can tell whether the first attempt arrived
(execute's `written`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from django.db import InterfaceError, OperationalError, connection, models


def ordered(model: type[models.Model], fields: list[Any]) -> list[Any]:
    """Model.from_db wants values in the model's field order, so the SELECT uses that order."""
    order = list(model._meta.concrete_fields)
    return sorted(fields, key=order.index)


def select_sql(model: type[models.Model], fields: list[Any], where: str, alias: str = "t", extra: str = "") -> str:
    """`extra`: more columns (of joined tables), after the model's."""
    fields = ordered(model, fields)
    columns = ", ".join(f"{alias}.{connection.ops.quote_name(f.column or f.name)}" for f in fields)
    columns += f", {extra}" if extra else ""
    table = connection.ops.quote_name(model._meta.db_table)
    # Identifiers come from the model, values are always bound parameters.
    return f"SELECT {columns} FROM {table} {alias} {where}"  # noqa: S608


@cache
def _plan(model: type[models.Model], names: tuple[str, ...]) -> tuple[list[str], list[list[Any]], list[Any]]:
    fields = ordered(model, [model._meta.get_field(n) for n in names])
    expressions = [f.get_col(model._meta.db_table) for f in fields]
    converters = [
        connection.ops.get_db_converters(e) + f.get_db_converters(connection)
        for f, e in zip(fields, expressions, strict=True)
    ]
    return [f.attname for f in fields], converters, expressions


def instance(model: type[models.Model], fields: list[Any], row: tuple[Any, ...]) -> Any:
    attnames, converters, expressions = _plan(model, tuple(f.name for f in fields))
    values = []
    for value, convs, expression in zip(row, converters, expressions, strict=True):
        for converter in convs:
            value = converter(value, expression, connection)
        values.append(value)
    return model.from_db(connection.alias, attnames, values)


def _run(sql: str, params: Sequence[Any], *, rows: bool) -> Any:
    import psycopg

    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall() if rows else cursor.rowcount


def fetch(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of a read on the serving path (a prepared statement on PostgreSQL)."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    db: Any = connection  # (django-stubs do not declare the health-check attributes)
    reused = db.connection is not None and not db.in_atomic_block
    if reused and db.health_check_enabled and not db.health_check_done:
        db.health_check_done = True  # this read is the health check
        try:
            return _run(sql, params, rows=True)
        except (OperationalError, InterfaceError):
            db.close()  # dead since its last request: reconnect and read again, once
    else:
        db.close_if_health_check_failed()
    return _run(sql, params, rows=True)


def execute(sql: str, params: Sequence[Any], *, written: Callable[[], bool] | None = None) -> int:
    """A write on the serving path (a prepared statement on PostgreSQL); the number of rows it
    wrote. In autocommit mode it is durable once this returns.

    If it is the request's first statement on a reused connection and `written` can tell whether
    it took effect (a unique id to look for), the write is the health check: on a dead
    connection it reconnects, asks `written()`, and writes again only if the first attempt never
    reached the database, so nothing is written twice. Otherwise Django's health check runs
    first. A failure on a live connection is the caller's to report."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount
    db: Any = connection  # (django-stubs do not declare the health-check attributes)
    reused = db.connection is not None and not db.in_atomic_block
    if written is not None and reused and db.health_check_enabled and not db.health_check_done:
        db.health_check_done = True  # this write is the health check
        try:
            return int(_run(sql, params, rows=False))
        except (OperationalError, InterfaceError):
            db.close()  # dead since its last request
            if written():  # (reconnects) the first attempt committed before the connection broke
                return 1
    else:
        db.close_if_health_check_failed()
    return int(_run(sql, params, rows=False))
