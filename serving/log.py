"""The prediction log's writer: it owns a record's layout, its canonical JSON texts and its
Merkle leaf, and writes it with one INSERT before any answer leaves.

Why raw SQL: the ORM's query compilation cost more than the write itself on the serving path
(docs/benchmarks.md), so the INSERT is built once per shape from the model's concrete fields and sent
as a prepared statement (serving.rawsql). What it depends on in Django: `Field.column`,
`Field.get_db_prep_save()` and `connection.ops.quote_name()`, which is what the ORM's own
INSERT compiler uses (django.db.models.sql.compiler.SQLInsertCompiler); a field whose value
needs more than get_db_prep_save (a database default, say) would need its own path.

The guarded INSERT: an answer's record is inserted with INSERT ... SELECT ... WHERE the version
row still has the artifact hash and a status that may answer (and the client key is still not
revoked), so a process that remembered a version or key from an earlier request can never log,
and so return, an answer from a version that stopped being servable."""

from __future__ import annotations

import functools
import hashlib
import math
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.utils import timezone

from core.canonical import canonical_json, canonical_number
from core.keyfiles import read_or_create
from lifecycle.models import ModelVersion, RegisteredModel
from serving import merkle, rawsql
from serving.models import ApiKey, Outcome, PredictionKey, PredictionLog


@dataclass(frozen=True)
class Guard:
    """What the log INSERT must find true when it writes an answer: the version row's id, the
    artifact hash the answer came from, the statuses that may answer, and (for a client key)
    that the key is not revoked."""

    version_id: int
    artifact_sha256: str
    # the manifest the serving process verified when it loaded the version (docs/ledger.md)
    manifest_sha256: str
    statuses: tuple[str, ...]
    api_key_id: int | None = None
    # The model's kill switch, read by the same INSERT: an answer from the production (or a
    # named) version needs the model not stopped; a fallback's answer needs it stopped with this
    # very fallback (governance.killswitch).
    fallback: bool = False


@dataclass(frozen=True)
class Entry:
    """One record to write: who asked what of which version, and what came of it."""

    model_name: str
    version: ModelVersion | None
    api_key: ApiKey | None
    user: Any
    caller: str
    request_id: str
    protocol: str
    outcome: str
    started: float
    reason: str = ""
    inputs: Any = None
    outputs: dict[str, Any] | None = None
    engine: str = ""
    business_keys: list[str] | None = None  # one per row, checked by the caller
    public_id: uuid.UUID | None = None  # chosen by the caller when the stored inputs are bound to it
    prelude: Prelude | None = None  # rows that must be written with the record, or neither is
    source: str = "api"  # serving.models.LogSource


@dataclass(frozen=True)
class Prelude:
    """Rows the record depends on (a new data subject's key, which its ciphertext names), written
    by the record's own INSERT on PostgreSQL, as a data-modifying WITH: `sql` is an INSERT ...
    ON CONFLICT DO NOTHING RETURNING 1 that must return `rows` rows, or the record is not written
    either (the guarded write then returns None, as for a version no longer servable). One
    statement instead of two: a new subject's key cost a round trip of its own."""

    sql: str
    params: tuple[Any, ...]
    rows: int


def dump_json(value: Any) -> str:
    """Compact JSON with sorted keys, as stored in the log and hashed as stored. orjson writes a
    1,000-row batch about 10x faster than json.dumps; what it cannot write (integers beyond 64
    bits, say) falls back to the standard library, so a refusal is still logged."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return canonical_json(value)


# The columns a leaf covers, in the order leaf_of() reads them (values_list() can feed it).
LEAF_FIELDS = (
    "public_id",
    "created_at",
    "model_name",
    "version_number",
    "version_id",
    "caller",
    "request_id",
    "protocol",
    "outcome",
    "reason",
    "n_rows",
    "engine",
    "latency_ms",
    "inputs_json",
    "outputs_json",
    "business_keys_json",
    "source",
    "batch_job_id",
    "batch_chunk",
)


def leaf_of(values: tuple[Any, ...]) -> bytes:
    """The Merkle leaf of a record from its LEAF_FIELDS values: SHA-256(0x00 || canonical JSON of
    its metadata, then the stored canonical JSON texts of its inputs and outputs). Business keys
    are part of the metadata only when the record has some, and the source (batch job and
    chunk, shadow) only when it is not a request, so records written before they existed (and
    plain requests) hash exactly as they always did."""
    (public_id, created_at, model, version, version_id, caller, request_id, protocol, outcome, reason, n_rows,
     engine, latency_ms, inputs_json, outputs_json, *rest) = values  # fmt: skip
    business_keys_json = rest[0] if rest else ""
    source, batch_job_id, batch_chunk = (*rest[1:4], None, None, None)[:3]
    meta = {
        "id": str(public_id),
        "created_at": created_at.isoformat(),
        "model": model,
        "version": version,
        "version_id": version_id,
        "caller": caller,
        "request_id": request_id,
        "protocol": protocol,
        "outcome": outcome,
        "reason": reason,
        "n_rows": n_rows,
        "engine": engine,
        "latency_ms": canonical_number(latency_ms),  # one form: an int default written, a float read back
    }
    if business_keys_json:
        meta["business_keys"] = orjson.loads(business_keys_json)
    if source and source != "api":
        meta["source"] = source
        if batch_job_id is not None:
            meta["batch"] = {"job": batch_job_id, "chunk": batch_chunk}
    blob = "\x1e".join((canonical_json(meta), inputs_json, outputs_json))
    return merkle.leaf_hash(blob.encode())


def record_leaf(record: PredictionLog) -> bytes:
    """The Merkle leaf of a record, recomputable from the row alone."""
    return leaf_of(tuple(getattr(record, name) for name in LEAF_FIELDS))


def _json_safe(value: Any) -> Any:
    """Refused input may hold NaN or infinity, which JSON columns reject: keep them as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


json_safe = _json_safe


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL: a client's NUL (in a request id, or echoed in a refusal
    reason) is stored as U+FFFD, so the record is still written instead of the log failing."""
    return value.replace("\x00", "\ufffd")


def write(entry: Entry, guard: Guard | None = None) -> PredictionLog | None:
    """Write the record, durable when this returns. With a guard, None means nothing was written:
    the version is no longer servable or the key was revoked. Raises DatabaseError when the log
    cannot be written (the caller answers 503 and returns no prediction)."""
    ok = entry.outcome == Outcome.OK
    inputs = entry.inputs
    record = PredictionLog(
        public_id=entry.public_id or uuid.uuid4(),
        created_at=timezone.now(),
        model_name=_text(entry.model_name)[:64],
        version=entry.version,
        version_number=entry.version.version if entry.version else None,
        api_key=entry.api_key,
        user=entry.user if getattr(entry.user, "pk", None) else None,
        caller=_text(entry.caller)[:150],
        request_id=_text(entry.request_id or "")[:200],
        protocol=entry.protocol,
        outcome=entry.outcome,
        reason=_text(entry.reason)[:5000],
        n_rows=len(inputs) if isinstance(inputs, list) and ok else 0,
        # valid input was checked finite already; anything refused is made JSON-safe first
        inputs_json=dump_json((inputs if ok else _json_safe(inputs)) if inputs is not None else []),
        outputs_json=dump_json(entry.outputs or {}),
        engine=entry.engine,
        latency_ms=round((time.perf_counter() - entry.started) * 1000, 3),
        business_keys_json=dump_json([_text(k) for k in entry.business_keys]) if entry.business_keys else "",
        source=entry.source,
    )
    leaf = record_leaf(record)
    record.leaf_hash = leaf.hex()
    record.mac = mac_of(leaf)
    if not entry.business_keys:
        return record if _insert(record, guard, prelude=entry.prelude) else None
    keys = [index_key(k)[:200] for k in record.business_keys]
    if connection.vendor == "postgresql":  # the record's INSERT writes its key index rows too
        return record if _insert(record, guard, prelude=entry.prelude, index=keys) else None
    # The record and its key index rows commit together (the keys themselves are in the leaf);
    # a failure ends the transaction (the caller's too), so no savepoint is needed for it.
    with transaction.atomic(savepoint=False):
        if not _insert(record, guard, savepoint=False, prelude=entry.prelude):
            return None
        PredictionKey.objects.bulk_create(
            PredictionKey(record_id=record.public_id, row=i, key=k) for i, k in enumerate(keys)
        )
    return record


def index_key(stored: str) -> str:
    """What the business-key index holds: the keyed hash of a personal key ("h:<hash>|<its
    ciphertext>" in the record, serving.personal), the key itself otherwise."""
    return stored.split("|", 1)[0] if stored.startswith("h:") else stored


def sealed_form(record: PredictionLog) -> PredictionLog:
    """Give a record built in bulk (batch chunks, shadow replays) its leaf and MAC, as write()
    does for one answer."""
    leaf = record_leaf(record)
    record.leaf_hash = leaf.hex()
    record.mac = mac_of(leaf)
    return record


def write_many(records: list[PredictionLog]) -> None:
    """Write records built by sealed_form() in bulk, inside the caller's transaction. On
    PostgreSQL with COPY: Django binds parameters on the client, so a multi-row INSERT of a
    50,000-row chunk became one 8 MB statement for the server to parse (3.8 s, against 0.1 s
    through COPY); elsewhere a multi-row INSERT. public_id is the record's identity for
    callers, so the database ids are not read back."""
    if not records:
        return
    if connection.vendor != "postgresql":
        PredictionLog.objects.bulk_create(records, batch_size=100)
        return
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column or f.name) for f in _INSERT_FIELDS)
    statement = f"COPY {quote(PredictionLog._meta.db_table)} ({columns}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for record in records:
            copy.write_row([f.get_db_prep_save(getattr(record, f.attname), connection) for f in _INSERT_FIELDS])


@functools.cache
def _mac_key() -> bytes:
    if settings.LOG_MAC_KEY:
        return settings.LOG_MAC_KEY.encode()
    if not settings.DEBUG:
        raise ImproperlyConfigured("LOG_MAC_KEY must be set when DEBUG=False (the prediction log's MAC key).")
    return read_or_create(settings.LOG_MAC_KEY_FILE, lambda: secrets.token_hex(32), what="LOG_MAC_KEY").encode()


def mac_of(leaf: bytes) -> str:
    """HMAC-SHA256 of a record's Merkle leaf under the log's MAC key."""
    return keyed_digest(leaf).hex()


@functools.cache
def _pads() -> tuple[Any, Any]:
    """SHA-256 states after the HMAC key's inner and outer pads (RFC 2104), computed once."""
    key = _mac_key()
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return hashlib.sha256(bytes(b ^ 0x36 for b in key)), hashlib.sha256(bytes(b ^ 0x5C for b in key))


def keyed_digest(message: bytes) -> bytes:
    """HMAC-SHA256 of `message` under the log's MAC key, equal to hmac.digest() but from the
    pads' states computed once: the personal-data path takes two per logged row, and this is
    2.5x faster than hmac.digest (which pads the key anew each call)."""
    inner, outer = _pads()
    first = inner.copy()
    first.update(message)
    second = outer.copy()
    second.update(first.digest())
    return second.digest()


def keyed_hexdigests(messages: list[bytes]) -> list[str]:
    """keyed_digest(m).hex() of each message, in one loop (two per logged row of a version with
    personal data)."""
    inner, outer = _pads()
    out = []
    for message in messages:
        first = inner.copy()
        first.update(message)
        second = outer.copy()
        second.update(first.digest())
        out.append(second.hexdigest())
    return out


def forget_mac_key() -> None:
    _mac_key.cache_clear()
    _pads.cache_clear()


_INSERT_FIELDS = [f for f in PredictionLog._meta.concrete_fields if not f.primary_key]


@functools.cache
def _insert_sql(
    vendor: str, guard_size: int, keyed: bool = False, prelude: str = "", indexed: bool = False, fallback: bool = False
) -> str:
    """INSERT ... VALUES for refusals; for answers INSERT ... SELECT ... WHERE the version row is
    still servable (and the API key still not revoked), so no answer is logged, and so returned,
    once its version stopped being servable or its key was revoked, whatever a process
    remembered. `prelude`: rows written first by the same statement (Prelude). `indexed`
    (PostgreSQL): the statement also writes the record's business-key index rows, from one
    array, so a keyed answer is one statement in autocommit, with no transaction of its own (no
    health-check query, BEGIN or COMMIT round trip: five round trips were one; and the ORM's
    bulk_create of 1,000 index rows alone took 17 ms)."""
    quote = connection.ops.quote_name
    table = quote(PredictionLog._meta.db_table)
    columns = ", ".join(quote(f.column or f.name) for f in _INSERT_FIELDS)
    if not guard_size:
        # Identifiers come from the model, values are always bound parameters.
        sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(_INSERT_FIELDS))})"  # noqa: S608
    else:

        def placeholder(field: Any) -> str:
            if vendor != "postgresql":
                return "%s"
            # INSERT ... SELECT gives bare parameters no column type: name it (text for strings,
            # so an over-long value is an error rather than cut by a cast to varchar(n)).
            kind = "text" if field.get_internal_type() in ("CharField", "TextField") else field.db_type(connection)
            return f"%s::{kind}"

        versions = quote(ModelVersion._meta.db_table)
        models_table = quote(RegisteredModel._meta.db_table)
        switch = "m.stopped_at IS NOT NULL AND m.fallback_version_id = v.id" if fallback else "m.stopped_at IS NULL"
        statuses = ", ".join(["%s"] * guard_size)
        moment = "%s::timestamptz" if vendor == "postgresql" else "%s"
        key = f" AND EXISTS (SELECT 1 FROM {quote(ApiKey._meta.db_table)} WHERE id = %s AND revoked_at IS NULL)"  # noqa: S608
        sql = (
            f"INSERT INTO {table} ({columns}) SELECT {', '.join(placeholder(f) for f in _INSERT_FIELDS)} "  # noqa: S608
            f"WHERE EXISTS (SELECT 1 FROM {versions} v WHERE v.id = %s AND v.artifact_sha256 = %s"
            f" AND v.manifest_sha256 = %s AND v.status IN ({statuses})"
            # ... and whose approval has not expired at the answer's time (docs/design.md: it must hold then)
            f" AND (v.approval_expires_at IS NULL OR v.approval_expires_at > {moment})"
            # ... and whose model's kill switch allows it (stopped: only the fallback answers)
            f" AND EXISTS (SELECT 1 FROM {models_table} m WHERE m.id = v.registered_model_id AND {switch}))"
            + (key if keyed else "")
            + (" AND (SELECT count(*) FROM prelude) = %s" if prelude else "")
        )
    ctes = [f"prelude AS ({prelude})"] if prelude else []
    if not indexed:
        return f"WITH {ctes[0]} {sql}" if ctes else sql
    ctes.append(f"record AS ({sql} RETURNING public_id)")
    index = quote(PredictionKey._meta.db_table)
    return (
        f"WITH {', '.join(ctes)} INSERT INTO {index} (record_id, {quote('row')}, {quote('key')}) "  # noqa: S608
        "SELECT record.public_id, t.n - 1, t.k FROM record, unnest(%s::text[]) WITH ORDINALITY AS t(k, n)"
    )


def _insert(
    record: PredictionLog, guard: Guard | None = None, *, savepoint: bool = True, prelude: Prelude | None = None,
    index: list[str] | None = None,
) -> bool:  # fmt: skip
    """One INSERT of a prepared statement (the ORM's query compilation cost more than the write
    itself on the serving path). In autocommit mode it is durable when execute returns. With a
    guard, False means nothing was written: the version is no longer servable or the key was
    revoked. `index` (PostgreSQL): the record's business-key index rows, written by the same
    statement."""
    keyed = guard is not None and guard.api_key_id is not None
    if prelude is not None and (guard is None or connection.vendor != "postgresql"):
        raise ValueError("A prelude is written by the guarded INSERT on PostgreSQL only.")
    if index is not None and connection.vendor != "postgresql":
        raise ValueError("Index rows are written by the record's INSERT on PostgreSQL only.")
    sql = _insert_sql(
        connection.vendor,
        len(guard.statuses) if guard else 0,
        keyed,
        prelude.sql if prelude else "",
        index is not None,
        bool(guard and guard.fallback),
    )
    values = [*prelude.params] if prelude else []
    values += [f.get_db_prep_save(getattr(record, f.attname), connection) for f in _INSERT_FIELDS]
    if guard:
        values += [guard.version_id, guard.artifact_sha256, guard.manifest_sha256, *guard.statuses]
        values.append(connection.ops.adapt_datetimefield_value(record.created_at))
        if guard.api_key_id is not None:
            values.append(guard.api_key_id)
    if prelude:
        values.append(prelude.rows)
    if index is not None:
        values.append(index)

    def written() -> bool:  # after a lost connection: did the INSERT reach the database after all?
        table = connection.ops.quote_name(PredictionLog._meta.db_table)
        return bool(rawsql.fetch(f"SELECT 1 FROM {table} WHERE public_id = %s", [record.public_id]))  # noqa: S608

    if connection.in_atomic_block:  # inside someone's transaction: a savepoint keeps it usable on failure
        with transaction.atomic(savepoint=savepoint):
            return rawsql.execute(sql, values) > 0  # (all its rows, or none)
    return rawsql.execute(sql, values, written=written) > 0
