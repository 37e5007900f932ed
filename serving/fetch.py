"""Reading many log rows fast: a values_list() query's rows from a server-side cursor, with
psycopg's C loaders for its timestamps and public ids on PostgreSQL.

Django registers a timestamptz loader of its own, written in Python, which took a fifth of a
seal verification's time; here the cursor that streams a verification or an export takes
psycopg's C loader instead (the same instant, in the connection's UTC), and public ids come as
their text (PostgreSQL writes a UUID exactly as str(uuid.UUID) does). Rows are the tuples
values_list() gives otherwise, the SQL is the ORM's own (so it is logged and explained as any
query)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db import connection
from django.db.models import QuerySet

CHUNK = 5000


def stream(rows: QuerySet[Any], chunk_size: int = CHUNK) -> Iterator[tuple[Any, ...]]:
    """The rows of a values_list() query, chunk_size at a time from a server-side cursor."""
    if connection.vendor != "postgresql" or connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"):
        yield from rows.iterator(chunk_size=chunk_size)
        return
    from psycopg.types.datetime import TimestamptzLoader
    from psycopg.types.string import TextLoader

    compiler = rows.query.get_compiler(using=rows.db)
    sql, params = compiler.as_sql()
    if compiler.get_converters([s[0] for s in compiler.select[0 : compiler.col_count]]):
        yield from rows.iterator(chunk_size=chunk_size)  # a field the database does not hand back as is
        return
    connection.ensure_connection()
    with connection.chunked_cursor() as cursor:
        adapters = cursor.cursor.adapters
        adapters.register_loader("timestamptz", TimestamptzLoader)  # psycopg's C loader when it has one
        adapters.register_loader("uuid", TextLoader)
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(chunk_size):
            yield from batch
