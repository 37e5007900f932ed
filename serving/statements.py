"""Every SQL text of the serving path, one function per statement, each built once per process
(identifiers come from the models, values are always bound parameters). serving.writers sends
them; tests/serving/test_statements.py and tests/services/test_statements_services.py run each
one on SQLite and on PostgreSQL.

Why raw SQL: the ORM's query compilation cost more than the statement itself on the serving
path (docs/benchmarks.md). What they depend on in Django: `Field.column` and
`connection.ops.quote_name()`, as the ORM's own compilers do."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.db import connection

from core import caches
from lifecycle.models import ModelVersion, RegisteredModel
from serving import rawsql
from serving.models import ApiKey, PredictionKey, PredictionLog, SubjectKey

# The record's columns, in the order every INSERT (and COPY) of a record lists them.
INSERT_FIELDS = [f for f in PredictionLog._meta.concrete_fields if not f.primary_key]

# What the predict path reads of a version (selectors.get_servable_version).
VERSION_FIELDS = [
    ModelVersion._meta.get_field(name)
    for name in (
        "id",
        "registered_model",
        "version",
        "status",
        "task",
        "input_schema",
        "classes",
        "artifact_sha256",
        "review_round",
        "artifact",
        "approval_expires_at",
        "personal_features",
        "subject_field",
        "manifest_sha256",
    )
]
KEY_FIELDS = list(ApiKey._meta.concrete_fields)


def _table(model: Any) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _columns(fields: list[Any]) -> str:
    return ", ".join(connection.ops.quote_name(f.column or f.name) for f in fields)


@cache
def servable_versions() -> str:
    """A model's production version, the version named (-1: none), and its fallback, each row
    ending with the model's stop and fallback (its kill switch, in the same round trip)."""
    return rawsql.select_sql(
        ModelVersion,
        VERSION_FIELDS,
        "JOIN lifecycle_registeredmodel m ON m.id = t.registered_model_id "
        "WHERE m.name = %s AND (t.status = 'production' OR t.version = %s OR t.id = m.fallback_version_id)",
        extra="m.stopped_at, m.fallback_version_id",
    )


@cache
def key_by_hash() -> str:
    """An API key by its hash."""
    return rawsql.select_sql(ApiKey, KEY_FIELDS, "WHERE t.key_hash = %s")


@cache
def record_insert() -> str:
    """A record, unguarded (a refusal: nothing it depends on can stop it being written)."""
    values = ", ".join(["%s"] * len(INSERT_FIELDS))
    return f"INSERT INTO {_table(PredictionLog)} ({_columns(INSERT_FIELDS)}) VALUES ({values})"  # noqa: S608


@cache
def guarded_record_insert(statuses: int, *, keyed: bool, fallback: bool, typed: bool) -> str:
    """An answer's record: INSERT ... SELECT ... WHERE the version row still has the artifact and
    manifest hashes the answer came from, one of `statuses` statuses and an unexpired approval,
    its model's kill switch allows it (stopped: only the fallback answers) and, `keyed`, the
    client key is not revoked; so no answer is logged, and so returned, once it could no longer
    be given, whatever a process remembered. Parameters: the record's INSERT_FIELDS, then the
    version id, artifact and manifest hashes, the statuses, the answer's time, the key's id.
    `typed` (PostgreSQL): INSERT ... SELECT gives bare parameters no column type, so each is
    cast (text for strings, so an over-long value is an error rather than cut to varchar(n))."""

    def placeholder(field: Any) -> str:
        if not typed:
            return "%s"
        kind = "text" if field.get_internal_type() in ("CharField", "TextField") else field.db_type(connection)
        return f"%s::{kind}"

    switch = "m.stopped_at IS NOT NULL AND m.fallback_version_id = v.id" if fallback else "m.stopped_at IS NULL"
    moment = "%s::timestamptz" if typed else "%s"
    key = f" AND EXISTS (SELECT 1 FROM {_table(ApiKey)} WHERE id = %s AND revoked_at IS NULL)"  # noqa: S608
    return (
        f"INSERT INTO {_table(PredictionLog)} ({_columns(INSERT_FIELDS)}) "  # noqa: S608
        f"SELECT {', '.join(placeholder(f) for f in INSERT_FIELDS)} "
        f"WHERE EXISTS (SELECT 1 FROM {_table(ModelVersion)} v WHERE v.id = %s AND v.artifact_sha256 = %s"
        f" AND v.manifest_sha256 = %s AND v.status IN ({', '.join(['%s'] * statuses)})"
        f" AND (v.approval_expires_at IS NULL OR v.approval_expires_at > {moment})"
        f" AND EXISTS (SELECT 1 FROM {_table(RegisteredModel)} m WHERE m.id = v.registered_model_id AND {switch}))"
        + (key if keyed else "")
    )


@cache
def record_insert_with(statuses: int, *, keyed: bool, fallback: bool, new_keys: int, indexed: bool) -> str:
    """PostgreSQL: a record's INSERT (guarded_record_insert() when `statuses`, else
    record_insert()) as one statement with what must be written with the record, or nothing is.
    `new_keys` (guarded only): new subjects' keys first, as a data-modifying WITH
    (new_subject_keys_with_ids(); its parameters come first, and the number of keys it must
    write last of the record's). `indexed`: the record's business-key index rows, from one text
    array, the last parameter. One statement in autocommit: no BEGIN or COMMIT round trip (and
    the ORM's bulk_create of 1,000 index rows alone took 17 ms)."""
    if not statuses:
        sql = record_insert()
    else:
        sql = guarded_record_insert(statuses, keyed=keyed, fallback=fallback, typed=True)
    ctes = []
    if new_keys:
        ctes.append(f"prelude AS ({new_subject_keys_with_ids(new_keys)})")
        sql += " AND (SELECT count(*) FROM prelude) = %s"
    if not indexed:
        return f"WITH {ctes[0]} {sql}" if ctes else sql
    ctes.append(f"record AS ({sql} RETURNING public_id, created_at)")
    return (
        f"WITH {', '.join(ctes)} INSERT INTO {_table(PredictionKey)} (record_id, {connection.ops.quote_name('row')}, "  # noqa: S608
        f"{connection.ops.quote_name('key')}, created_at) "
        "SELECT record.public_id, t.n - 1, t.k, record.created_at "
        "FROM record, unnest(%s::text[]) WITH ORDINALITY AS t(k, n)"
    )


@cache
def record_written() -> str:
    """Whether a record (by public id) is in the log: after a lost connection, did it arrive?"""
    return f"SELECT 1 FROM {_table(PredictionLog)} WHERE public_id = %s"  # noqa: S608


@cache
def copy_records() -> str:
    """PostgreSQL: records in bulk, by COPY (a chunk's 50,000-row INSERT was 8 MB to parse)."""
    return f"COPY {_table(PredictionLog)} ({_columns(INSERT_FIELDS)}) FROM STDIN"


@cache
def new_subject_keys_with_ids(n: int) -> str:
    """PostgreSQL: n new subject keys whose ids were reserved (reserve_subject_key_ids()),
    returning one row per key written (none for a key another process made meanwhile).
    Parameters per key: id, model, subject hash, month, wrapped key, KEK id, created at."""
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, NULL, '')"] * n)
    return (
        f"INSERT INTO {_table(SubjectKey)} (id, model_name, subject_hash, month, wrapped, kek_id, created_at, "  # noqa: S608
        f"erased_at, erased_because) VALUES {values} ON CONFLICT DO NOTHING RETURNING 1"
    )


@cache
def new_subject_keys(n: int) -> str:
    """PostgreSQL: n new subject keys, returning (id, subject hash) of each written (a subject
    whose live key another process made meanwhile is left out). Parameters per key: model,
    subject hash, month, wrapped key, KEK id, created at."""
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, NULL, '')"] * n)
    return (
        f"INSERT INTO {_table(SubjectKey)} (model_name, subject_hash, month, wrapped, kek_id, created_at, "  # noqa: S608
        f"erased_at, erased_because) VALUES {values} ON CONFLICT (model_name, subject_hash, month) "
        "WHERE erased_at IS NULL DO NOTHING RETURNING id, subject_hash"
    )


@cache
def reserve_subject_key_ids() -> str:
    """PostgreSQL: ids taken from the subject keys' sequence. Parameters: the table, how many."""
    return "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)"


@cache
def share_version() -> str:
    """PostgreSQL: a version's row, locked FOR SHARE (a retirement waits for the reader's commit)."""
    return f"SELECT 1 FROM {_table(ModelVersion)} WHERE id = %s FOR SHARE"  # noqa: S608


@cache
def share_model() -> str:
    """PostgreSQL: a model's row, locked FOR SHARE (a stop commits before or after, never during)."""
    return f"SELECT 1 FROM {_table(RegisteredModel)} WHERE id = %s FOR SHARE"  # noqa: S608


def latency_percentiles(inner: str) -> str:
    """PostgreSQL: the percentiles (an array parameter) of `inner`'s latency_ms column; `inner`
    is the ORM's own SQL of a queryset, never user text, and its parameters follow."""
    return f"SELECT percentile_disc(%s::float8[]) WITHIN GROUP (ORDER BY s.latency_ms) FROM ({inner}) s"  # noqa: S608


STATEMENTS = (
    servable_versions,
    key_by_hash,
    record_insert,
    guarded_record_insert,
    record_insert_with,
    record_written,
    copy_records,
    new_subject_keys_with_ids,
    new_subject_keys,
    reserve_subject_key_ids,
    share_version,
    share_model,
)
for _statement in STATEMENTS:
    caches.register(f"serving.statements.{_statement.__name__}", _statement.cache_clear)
