"""Serving a prediction: find the servable version, check the input, predict, and write the
prediction log record BEFORE the answer is returned. If the record cannot be written the
client gets 503 and no prediction. Refused and failed requests are logged too."""

from __future__ import annotations

import functools
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from core.canonical import canonical_json
from core.roles import roles_of
from lifecycle.errors import ArtifactIntegrityError
from lifecycle.models import ModelVersion
from serving import engine, merkle, rawsql
from serving.authentication import recheck_key
from serving.errors import ServingError
from serving.inputs import check_rows
from serving.models import ApiKey, Outcome, PredictionLog
from serving.selectors import forget_servable_version, recent_servable_version, servable_guard


@dataclass
class Caller:
    user: Any
    api_key: ApiKey | None

    @property
    def name(self) -> str:
        if self.api_key is not None:
            return f"api-key:{self.api_key.name}"
        return getattr(self.user, "username", "") or "anonymous"

    @property
    def may_predict(self) -> bool:
        return self.api_key is not None or bool(roles_of(self.user))


@dataclass
class Served:
    record: PredictionLog
    version: ModelVersion
    labels: list[Any]
    probabilities: list[list[float]] | None

    @property
    def prediction_ids(self) -> list[str]:
        prefix = str(self.record.public_id)  # once, not once per row
        return [f"{prefix}.{i}" for i in range(self.record.n_rows)]


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
)


def leaf_of(values: tuple[Any, ...]) -> bytes:
    """The Merkle leaf of a record from its LEAF_FIELDS values: SHA-256(0x00 || canonical JSON of
    its metadata, then the stored canonical JSON texts of its inputs and outputs)."""
    (public_id, created_at, model, version, version_id, caller, request_id, protocol, outcome, reason, n_rows,
     engine, latency_ms, inputs_json, outputs_json) = values  # fmt: skip
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
        "latency_ms": latency_ms,
    }
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


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL: a client's NUL (in a request id, or echoed in a refusal
    reason) is stored as U+FFFD, so the record is still written instead of the log failing."""
    return value.replace("\x00", "\ufffd")


def _write(
    *,
    caller: Caller,
    model_name: str,
    version: ModelVersion | None,
    request_id: str,
    protocol: str,
    outcome: str,
    reason: str = "",
    inputs: Any = None,
    outputs: dict[str, Any] | None = None,
    engine_name: str = "",
    started: float,
    guard: Guard | None = None,
) -> PredictionLog | None:
    """Write the record; None if a guard found the version no longer servable or the key
    revoked (then nothing was written)."""
    record = PredictionLog(
        public_id=uuid.uuid4(),
        created_at=timezone.now(),
        model_name=_text(model_name)[:64],
        version=version,
        version_number=version.version if version else None,
        api_key=caller.api_key,
        user=caller.user if getattr(caller.user, "pk", None) else None,
        caller=_text(caller.name)[:150],
        request_id=_text(request_id or "")[:200],
        protocol=protocol,
        outcome=outcome,
        reason=_text(reason)[:5000],
        n_rows=len(inputs) if isinstance(inputs, list) and outcome == Outcome.OK else 0,
        # valid input was checked finite already; anything refused is made JSON-safe first
        inputs_json=dump_json((inputs if outcome == Outcome.OK else _json_safe(inputs)) if inputs is not None else []),
        outputs_json=dump_json(outputs or {}),
        engine=engine_name,
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
    )
    record.leaf_hash = record_leaf(record).hex()
    return record if _insert(record, guard) else None


_INSERT_FIELDS = [f for f in PredictionLog._meta.concrete_fields if not f.primary_key]
# (version id, artifact SHA-256, statuses that may answer, API key id or None)
Guard = tuple[int, str, tuple[str, ...], int | None]


@functools.cache
def _insert_sql(vendor: str, guard_size: int, keyed: bool = False) -> str:
    """INSERT ... VALUES for refusals; for answers INSERT ... SELECT ... WHERE the version row is
    still servable (and the API key still not revoked), so no answer is logged, and so returned,
    once its version stopped being servable or its key was revoked, whatever a process
    remembered."""
    quote = connection.ops.quote_name
    table = quote(PredictionLog._meta.db_table)
    columns = ", ".join(quote(f.column or f.name) for f in _INSERT_FIELDS)
    if not guard_size:
        # Identifiers come from the model, values are always bound parameters.
        return f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(_INSERT_FIELDS))})"  # noqa: S608

    def placeholder(field: Any) -> str:
        if vendor != "postgresql":
            return "%s"
        # INSERT ... SELECT gives bare parameters no column type: name it (text for strings, so
        # an over-long value is an error rather than cut by a cast to varchar(n)).
        kind = "text" if field.get_internal_type() in ("CharField", "TextField") else field.db_type(connection)
        return f"%s::{kind}"

    versions = quote(ModelVersion._meta.db_table)
    statuses = ", ".join(["%s"] * guard_size)
    key = f" AND EXISTS (SELECT 1 FROM {quote(ApiKey._meta.db_table)} WHERE id = %s AND revoked_at IS NULL)"  # noqa: S608
    return (
        f"INSERT INTO {table} ({columns}) SELECT {', '.join(placeholder(f) for f in _INSERT_FIELDS)} "  # noqa: S608
        f"WHERE EXISTS (SELECT 1 FROM {versions} WHERE id = %s AND artifact_sha256 = %s AND status IN ({statuses}))"
        + (key if keyed else "")
    )


def _insert(record: PredictionLog, guard: Guard | None = None) -> bool:
    """One INSERT of a prepared statement (the ORM's query compilation cost more than the write
    itself on the serving path). In autocommit mode it is durable when execute returns. With a
    guard, False means nothing was written: the version is no longer servable or the key was
    revoked."""
    sql = _insert_sql(connection.vendor, len(guard[2]) if guard else 0, bool(guard and guard[3] is not None))
    values = [f.get_db_prep_save(getattr(record, f.attname), connection) for f in _INSERT_FIELDS]
    if guard:
        values += [guard[0], guard[1], *guard[2]] + ([guard[3]] if guard[3] is not None else [])

    def written() -> bool:  # after a lost connection: did the INSERT reach the database after all?
        table = connection.ops.quote_name(PredictionLog._meta.db_table)
        return bool(rawsql.fetch(f"SELECT 1 FROM {table} WHERE public_id = %s", [record.public_id]))  # noqa: S608

    if connection.in_atomic_block:  # inside someone's transaction: a savepoint keeps it usable on failure
        with transaction.atomic():
            return rawsql.execute(sql, values) == 1
    return rawsql.execute(sql, values, written=written) == 1


def _refuse(exc: ServingError, *, outcome: str, version: ModelVersion | None = None, **kwargs: Any) -> ServingError:
    key = kwargs["caller"].api_key
    if key is not None and key.user_id is None:
        # A client key may have been remembered from an earlier request and revoked since: a
        # revoked key gets 401 (AuthenticationFailed), as at the door, not a logged refusal.
        try:
            recheck_key(key)
        except DatabaseError:
            return ServingError("The prediction log is unavailable.", status=503, code="log_unavailable")
    try:
        _write(outcome=outcome, reason=f"{exc.code}: {exc.message}", version=version, **kwargs)
    except DatabaseError:
        # The refusal stands even if it cannot be logged: no prediction leaves either way.
        return ServingError("The prediction log is unavailable.", status=503, code="log_unavailable")
    return exc


def log_refusal(exc: ServingError, *, caller: Caller, model_name: str, request_id: str, protocol: str) -> ServingError:
    """Log a request refused before any row was read (unknown model, bad tensors...)."""
    outcome = Outcome.INVALID if exc.status in (400, 413) else Outcome.REFUSED
    return _refuse(
        exc,
        outcome=outcome,
        caller=caller,
        model_name=model_name,
        request_id=request_id,
        protocol=protocol,
        inputs=[],
        started=time.perf_counter(),
    )


def serve(
    *,
    caller: Caller,
    model_name: str,
    version_number: int | None,
    instances: Any,
    request_id: str = "",
    protocol: str = "v1",
) -> Served:
    """Answer a prediction request, logged; raises ServingError (logged) when refused."""
    started = time.perf_counter()
    common: dict[str, Any] = {
        "caller": caller,
        "model_name": model_name,
        "request_id": request_id,
        "protocol": protocol,
        "started": started,
    }
    if "\x00" in request_id:
        raise _refuse(
            ServingError("The request id must not contain the NUL character.", status=400, code="invalid_input"),
            outcome=Outcome.INVALID,
            inputs=[],
            **common,
        )
    if not caller.may_predict:
        raise _refuse(
            ServingError("Your account has no role that may request predictions.", status=403, code="forbidden"),
            outcome=Outcome.REFUSED,
            inputs=[],
            **common,
        )
    # First from what this process resolved before (version, and a client key), without a round
    # trip; the guarded INSERT is the authority. If it finds the version no longer servable or
    # the key revoked, look both up again, once. A refusal is only given after that fresh look.
    stale: _Stale | None = None
    for fresh in (False, True):
        if fresh and caller.api_key is not None:
            recheck_key(caller.api_key)  # revoked meanwhile: 401, as at the door
        try:
            version = recent_servable_version(model_name, version_number, fresh=fresh)
        except ServingError as exc:
            raise _refuse(exc, outcome=Outcome.REFUSED, inputs=[], **common)
        if stale is not None and stale.refusal is not None and stale.identity == (version.pk, version.artifact_sha256):
            # Still servable and the very same version and artifact: its refusal stands, without
            # checking the rows or running the model a second time.
            refusal, outcome = stale.refusal
            raise _refuse(refusal, outcome=outcome, version=version, inputs=_loggable(instances), **common)
        try:
            return _answer(version, instances, version_number is not None, common, remembered=not fresh)
        except _Stale as found:
            stale = found
            forget_servable_version(model_name, version_number)
    # Servable when looked up, no longer when written: it changed under this very request.
    raise _refuse(
        ServingError(
            f"{model_name} stopped being servable while this request was answered; nothing was returned.",
            status=403,
            code="version_not_servable",
        ),
        outcome=Outcome.REFUSED,
        version=version,
        inputs=[],
        **common,
    )


class _Stale(Exception):
    """The remembered version may be out of date: look it up again before answering or refusing.
    `refusal` is what the remembered version would have been refused with (None if the guarded
    write found it no longer servable)."""

    def __init__(self, version: ModelVersion, refusal: tuple[ServingError, str] | None = None) -> None:
        super().__init__()
        self.identity = (version.pk, version.artifact_sha256)
        self.refusal = refusal


def _loggable(instances: Any) -> Any:
    """What a refusal logs of the rows: all of them, unless there are too many to be served."""
    return instances if isinstance(instances, list) and len(instances) <= settings.SERVING_MAX_ROWS else []


def _answer(version: ModelVersion, instances: Any, named: bool, common: dict[str, Any], *, remembered: bool) -> Served:
    """Check, predict and log an answer from `version`. Raises _Stale if the guarded write found
    the version no longer servable (nothing was logged or returned), and, for a remembered
    version, instead of refusing: a refusal is logged against a freshly looked-up version."""
    caller: Caller = common["caller"]

    def refuse(exc: ServingError, outcome: str, *, certain: bool = False) -> Exception:
        if remembered and not certain:
            return _Stale(version, (exc, outcome))
        return _refuse(exc, outcome=outcome, version=version, inputs=_loggable(instances), **common)

    try:
        checked = check_rows(instances, version.input_schema, max_rows=settings.SERVING_MAX_ROWS)
    except ServingError as exc:
        raise refuse(exc, Outcome.INVALID)
    try:
        result = engine.predict(version, checked)
    except ArtifactIntegrityError as exc:
        # (certain: the stored files are wrong whatever the version's status, and looking again
        # would only record the tampering twice)
        raise refuse(ServingError(exc.message, status=503, code="artifact_tampered"), Outcome.ERROR, certain=True)
    except OSError as exc:  # the stored artifact or ONNX file cannot be read
        raise refuse(
            ServingError(f"The model's stored files cannot be read ({exc}).", status=503, code="model_unavailable"),
            Outcome.ERROR,
            certain=True,
        )
    except Exception as exc:  # a model that crashes on valid input is logged and refused, never a 500
        raise refuse(
            ServingError(f"The model could not predict on this input: {exc}", status=422, code="prediction_failed"),
            Outcome.ERROR,
        )
    outputs: dict[str, Any] = {"predictions": result.labels}
    if result.probabilities is not None:
        outputs["probabilities"] = result.probabilities
        outputs["classes"] = version.classes
    try:
        record = _write(
            outcome=Outcome.OK,
            version=version,
            inputs=instances,
            outputs=outputs,
            engine_name=result.engine,
            guard=(*servable_guard(version, named=named), caller.api_key.pk if caller.api_key else None),
            **common,
        )
    except DatabaseError:
        raise ServingError(
            "The prediction could not be logged, so it is not returned. Try again later.",
            status=503,
            code="log_unavailable",
        )
    if record is None:
        raise _Stale(version)
    return Served(record=record, version=version, labels=result.labels, probabilities=result.probabilities)
