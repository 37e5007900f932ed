"""How the serving path talks to its database, chosen once per process: PostgresLogWriter
(prepared statements, one statement per answer whatever it carries, COPY in bulk) or
PortableLogWriter (any database Django speaks to: SQLite in development and tests, through
Django's cursor and the ORM, several statements in one transaction where PostgreSQL sends one).
Every vendor difference of the serving path is a method here; the SQL texts are in
serving.statements.

Why prepared (PostgreSQL): Django binds parameters on the client, so PostgreSQL parses and plans
every statement anew; planning the servable-version join took 0.29 ms, three times its
execution. A prepared statement is planned once per connection (psycopg keys it by its text).

Why the request's first statement is the health check (PostgreSQL): with CONN_HEALTH_CHECKS,
Django sends `SELECT 1` before the first query of every request that reuses a connection. Here
the first statement is sent directly instead. A read whose connection turns out to be dead is
sent again once on a new one, which is what the health check would have done, one round trip
cheaper. A write is only sent again when its caller can tell whether the first attempt arrived
(execute's `written`), so nothing is written twice."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connection, connections, transaction
from django.db.models import QuerySet

from core import caches
from lifecycle.models import ModelVersion
from serving import statements
from serving.models import PredictionKey, PredictionLog, SubjectKey

T = TypeVar("T")


class Guard(Protocol):
    """What an answer's INSERT must find true (serving.log.Guard)."""

    @property
    def version_id(self) -> int: ...
    @property
    def artifact_sha256(self) -> str: ...
    @property
    def manifest_sha256(self) -> str: ...
    @property
    def statuses(self) -> tuple[str, ...]: ...
    @property
    def api_key_id(self) -> int | None: ...
    @property
    def fallback(self) -> bool: ...


class NewKeys(Protocol):
    """New subjects' keys to write with a record (serving.subject_keys.NewKeys): one row of
    new_subject_keys_with_ids() parameters per key; remember() once they are written."""

    rows: list[tuple[Any, ...]]

    def remember(self) -> None: ...


class PortableLogWriter:
    """Any database: Django's cursor and the ORM."""

    def fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows of a read."""
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def execute(self, sql: str, params: Sequence[Any], *, written: Callable[[], bool] | None = None) -> int:
        """A write; the number of rows it wrote. In autocommit mode it is durable once this returns."""
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return int(cursor.rowcount)

    def insert_record(
        self, record: PredictionLog, guard: Guard | None, new_keys: NewKeys | None, index: list[str] | None
    ) -> bool:
        """Write a sealed record (and its key index rows, one per row's business key); with a
        guard, False means nothing was written (serving.statements.guarded_record_insert)."""
        if new_keys is not None:
            raise ValueError("New keys are written by the record's INSERT on PostgreSQL only.")
        if index is None:
            return self._insert(record, guard, savepoint=True)
        # The record and its key index rows commit together (the keys themselves are in the leaf);
        # a failure ends the transaction (the caller's too), so no savepoint is needed for it.
        with transaction.atomic(savepoint=False):
            if not self._insert(record, guard, savepoint=False):
                return False
            PredictionKey.objects.bulk_create(
                PredictionKey(record_id=record.public_id, row=i, key=k, created_at=record.created_at)
                for i, k in enumerate(index)
            )
        return True

    def _insert(self, record: PredictionLog, guard: Guard | None, *, savepoint: bool) -> bool:
        if guard is None:
            return self._send_record(statements.record_insert(), _record_values(record), record, savepoint)
        sql = statements.guarded_record_insert(
            len(guard.statuses), keyed=guard.api_key_id is not None, fallback=guard.fallback, typed=False
        )
        return self._send_record(sql, _record_values(record) + _guard_values(record, guard), record, savepoint)

    def _send_record(self, sql: str, values: list[Any], record: PredictionLog, savepoint: bool) -> bool:
        """In someone's transaction a savepoint keeps it usable on failure; in autocommit mode the
        record is durable when this returns."""
        if connection.in_atomic_block:
            with transaction.atomic(savepoint=savepoint):
                return self.execute(sql, values) > 0  # (all its rows, or none)

        def written() -> bool:  # after a lost connection: did the INSERT reach the database after all?
            public_id = PredictionLog._meta.get_field("public_id").get_db_prep_value(record.public_id, connection)
            return bool(self.fetch(statements.record_written(), [public_id]))

        return self.execute(sql, values, written=written) > 0

    def write_many(self, records: list[PredictionLog]) -> None:
        """Records sealed in bulk (batch chunks, shadow replays), inside the caller's transaction."""
        PredictionLog.objects.bulk_create(records, batch_size=100)

    def answer_with_keys(self, answer: Callable[[NewKeys | None], T], new_keys: Callable[[], NewKeys]) -> T:
        """Write an answer whose new subjects' keys must commit with its record: here both in
        one transaction (serving.subject_keys writes the keys, the record follows)."""
        with transaction.atomic():
            return answer(None)

    def make_subject_keys(
        self, model_name: str, wrapped: dict[str, tuple[str, bytes]], month: Any, created_at: Any
    ) -> dict[str, int]:
        """Write a new key for each subject hash (its KEK id and wrapped key); returns the id of
        each written, leaving out a subject whose live key another process made first."""
        rows = [
            SubjectKey(model_name=model_name, subject_hash=h, month=month, wrapped=w[1], kek_id=w[0])
            for h, w in wrapped.items()
        ]
        SubjectKey.objects.bulk_create(rows, ignore_conflicts=True)
        live = live_keys(model_name, set(wrapped), month)
        return {h: pk for pk, h, stored, _ in live if bytes(stored) == wrapped[h][1]}  # ours, not another's

    def latency_percentiles(self, answered: QuerySet[PredictionLog], percentiles: Sequence[float]) -> list[Any]:
        """The latency_ms at each percentile of `answered` (nearest rank, as percentile_disc), or
        None for each when it is empty."""
        n = answered.count()
        if n == 0:
            return [None] * len(percentiles)
        ranked = answered.order_by("latency_ms").values_list("latency_ms", flat=True)
        return [ranked[min(n - 1, max(0, int(-(-p * n // 1)) - 1))] for p in percentiles]

    def reserve_subject_key_ids(self, n: int) -> list[int]:
        raise NotImplementedError("Subject key ids are reserved on PostgreSQL only.")

    def share_servable(self, version: ModelVersion) -> None:
        """Hold a version's row and its model's against change until this transaction commits;
        here the transaction itself does (SQLite writes one at a time)."""


class PostgresLogWriter(PortableLogWriter):
    """PostgreSQL: psycopg prepared statements; an answer's record is one statement in autocommit
    whatever it carries (its new subjects' keys, its key index rows)."""

    def fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._send(sql, params, True, None)

    def execute(self, sql: str, params: Sequence[Any], *, written: Callable[[], bool] | None = None) -> int:
        return int(self._send(sql, params, False, written))

    def _send(self, sql: str, params: Sequence[Any], rows: bool, written: Callable[[], bool] | None) -> Any:
        # The connection itself, not the `connection` proxy, whose every attribute is a lookup in
        # a thread-local (a dozen per answer, ~1% of its CPU).
        db: Any = connections[DEFAULT_DB_ALIAS]  # (django-stubs do not declare the health-check attributes)
        reused = db.connection is not None and not db.in_atomic_block
        if (rows or written is not None) and reused and db.health_check_enabled and not db.health_check_done:
            db.health_check_done = True  # this statement is the health check
            try:
                return _prepared(db, sql, params, rows)
            except (OperationalError, InterfaceError):
                db.close()  # dead since its last request: reconnect and send it again, once
                if written is not None and written():  # (reconnects) the first attempt had committed
                    return 1
        else:
            db.close_if_health_check_failed()
        return _prepared(db, sql, params, rows)

    def insert_record(
        self, record: PredictionLog, guard: Guard | None, new_keys: NewKeys | None, index: list[str] | None
    ) -> bool:
        if guard is None and new_keys is not None:
            raise ValueError("New keys are written by a guarded INSERT only.")
        if guard is None and index is None:
            return self._send_record(statements.record_insert(), _record_values(record), record, True)
        n_keys = len(new_keys.rows) if new_keys is not None else 0
        sql = statements.record_insert_with(
            len(guard.statuses) if guard is not None else 0,
            keyed=guard is not None and guard.api_key_id is not None,
            fallback=guard is not None and guard.fallback,
            new_keys=n_keys,
            indexed=index is not None,
        )
        values = [v for row in new_keys.rows for v in row] if new_keys is not None else []
        values += _record_values(record)
        if guard is not None:
            values += _guard_values(record, guard)
        if n_keys:
            values.append(n_keys)
        if index is not None:
            values.append(index)
        return self._send_record(sql, values, record, True)

    def write_many(self, records: list[PredictionLog]) -> None:
        """By COPY: Django binds parameters on the client, so a multi-row INSERT of a 50,000-row
        chunk was one 8 MB statement for the server to parse (3.8 s, against 0.1 s through COPY)."""
        if not records:
            return
        with connection.cursor() as cursor, cursor.cursor.copy(statements.copy_records()) as copy:
            for record in records:
                copy.write_row(_record_values(record))

    def answer_with_keys(self, answer: Callable[[NewKeys | None], T], new_keys: Callable[[], NewKeys]) -> T:
        """The record's own INSERT writes its new subjects' keys. If it met a key made meanwhile
        by another process, nothing was written, and the answer is sealed once more under the
        subject's live key."""
        pending = new_keys()
        record = answer(pending)
        if record is None and pending.rows:
            return answer(None)
        if isinstance(record, PredictionLog):
            pending.remember()
        return record

    def make_subject_keys(
        self, model_name: str, wrapped: dict[str, tuple[str, bytes]], month: Any, created_at: Any
    ) -> dict[str, int]:
        params: list[Any] = []
        for h, (kek_id, key) in wrapped.items():
            params += [model_name, h, month, key, kek_id, created_at]
        return {h: pk for pk, h in self.fetch(statements.new_subject_keys(len(wrapped)), params)}

    def latency_percentiles(self, answered: QuerySet[PredictionLog], percentiles: Sequence[float]) -> list[Any]:
        """Computed by the database, no rows come to Python."""
        sql, params = answered.values("latency_ms").query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(statements.latency_percentiles(sql), [list(percentiles), *params])
            values = cursor.fetchone()[0]
        return values or [None] * len(percentiles)  # (NULL when there is nothing to rank)

    def reserve_subject_key_ids(self, n: int) -> list[int]:
        rows = self.fetch(statements.reserve_subject_key_ids(), [SubjectKey._meta.db_table, n])
        return [pk for (pk,) in rows]

    def share_servable(self, version: ModelVersion) -> None:
        with connection.cursor() as cursor:
            cursor.execute(statements.share_version(), [version.pk])
            cursor.execute(statements.share_model(), [version.registered_model_id])


def live_keys(model_name: str, hashes: set[str], month: Any) -> list[Any]:
    """(id, subject hash, wrapped key, KEK id) of the subjects' live keys for the month."""
    return list(
        SubjectKey.objects.filter(
            model_name=model_name, subject_hash__in=hashes, month=month, erased_at__isnull=True
        ).values_list("pk", "subject_hash", "wrapped", "kek_id")
    )


def _prepared(db: Any, sql: str, params: Sequence[Any], rows: bool) -> Any:
    import psycopg

    db.ensure_connection()
    with db.wrap_database_errors, psycopg.Cursor(db.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall() if rows else cursor.rowcount


def _record_values(record: PredictionLog) -> list[Any]:
    db = connections[DEFAULT_DB_ALIAS]  # (once, not through the proxy once per field)
    return [f.get_db_prep_save(getattr(record, f.attname), db) for f in statements.INSERT_FIELDS]


def _guard_values(record: PredictionLog, guard: Guard) -> list[Any]:
    values = [guard.version_id, guard.artifact_sha256, guard.manifest_sha256, *guard.statuses]
    values.append(connection.ops.adapt_datetimefield_value(record.created_at))
    if guard.api_key_id is not None:
        values.append(guard.api_key_id)
    return values


@functools.cache
def writer() -> PortableLogWriter:
    """This process's writer, chosen once from its database's vendor."""
    return PostgresLogWriter() if connection.vendor == "postgresql" else PortableLogWriter()


caches.register("serving.writers.writer", writer.cache_clear)
