"""Model instances from precompiled SQL on the serving path, converted exactly as the ORM
would (the backend's and the fields' converters), without its per-query compilation cost."""

from __future__ import annotations

from typing import Any

from django.db import connection, models


def ordered(model: type[models.Model], fields: list[models.Field]) -> list[models.Field]:
    """Model.from_db wants values in the model's field order, so the SELECT uses that order."""
    order = list(model._meta.concrete_fields)
    return sorted(fields, key=order.index)


def select_sql(model: type[models.Model], fields: list[models.Field], where: str, alias: str = "t") -> str:
    fields = ordered(model, fields)
    columns = ", ".join(f"{alias}.{connection.ops.quote_name(f.column)}" for f in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    # Identifiers come from the model, values are always bound parameters.
    return f"SELECT {columns} FROM {table} {alias} {where}"  # noqa: S608


def instance(model: type[models.Model], fields: list[models.Field], row: tuple[Any, ...]) -> Any:
    fields = ordered(model, fields)
    values = []
    for field, value in zip(fields, row, strict=True):
        expression = field.get_col(model._meta.db_table)
        for converter in connection.ops.get_db_converters(expression) + field.get_db_converters(connection):
            value = converter(value, expression, connection)
        values.append(value)
    return model.from_db(connection.alias, [f.attname for f in fields], values)
