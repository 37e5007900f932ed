"""Model instances from the rows of the serving path's statements (serving.statements), converted
exactly as the ORM would (the backend's and the fields' converters), without its per-query
compilation cost; serving.writers sends the statements.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.db import connection, models

from core import caches


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


caches.register("serving.rawsql.plans", _plan.cache_clear)
