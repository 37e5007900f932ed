"""Serving a prediction: find the servable version, check the input, predict, and write the
prediction log record BEFORE the answer is returned. If the record cannot be written the
client gets 503 and no prediction. Refused and failed requests are logged too."""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from governance.audit import canonical_json
from governance.roles import roles_of
from lifecycle.errors import ArtifactIntegrityError
from lifecycle.models import ModelVersion
from serving import engine, merkle
from serving.errors import ServingError
from serving.inputs import check_rows
from serving.models import ApiKey, Outcome, PredictionLog
from serving.selectors import get_servable_version


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
) -> PredictionLog:
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
    _insert(record)
    return record


_INSERT_FIELDS = [f for f in PredictionLog._meta.concrete_fields if not f.primary_key]


def _insert(record: PredictionLog) -> None:
    """One INSERT of a prepared statement: the ORM's query compilation cost more than the
    write itself on the serving path. In autocommit mode it is durable when execute returns."""
    quote = connection.ops.quote_name
    sql = "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608 (identifiers from the model, values bound)
        quote(PredictionLog._meta.db_table),
        ", ".join(quote(f.column or f.name) for f in _INSERT_FIELDS),
        ", ".join(["%s"] * len(_INSERT_FIELDS)),
    )
    values = [f.get_db_prep_save(getattr(record, f.attname), connection) for f in _INSERT_FIELDS]
    if connection.in_atomic_block:  # inside someone's transaction: a savepoint keeps it usable on failure
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, values)
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, values)


def _refuse(exc: ServingError, *, outcome: str, version: ModelVersion | None = None, **kwargs: Any) -> ServingError:
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
    try:
        version = get_servable_version(model_name, version_number)
    except ServingError as exc:
        raise _refuse(exc, outcome=Outcome.REFUSED, inputs=[], **common)
    loggable = instances if isinstance(instances, list) and len(instances) <= settings.SERVING_MAX_ROWS else []
    try:
        checked = check_rows(instances, version.input_schema, max_rows=settings.SERVING_MAX_ROWS)
    except ServingError as exc:
        raise _refuse(exc, outcome=Outcome.INVALID, version=version, inputs=loggable, **common)
    try:
        result = engine.predict(version, checked)
    except ArtifactIntegrityError as exc:
        raise _refuse(
            ServingError(exc.message, status=503, code="artifact_tampered"),
            outcome=Outcome.ERROR,
            version=version,
            inputs=loggable,
            **common,
        )
    except OSError as exc:  # the stored artifact or ONNX file cannot be read
        raise _refuse(
            ServingError(f"The model's stored files cannot be read ({exc}).", status=503, code="model_unavailable"),
            outcome=Outcome.ERROR,
            version=version,
            inputs=loggable,
            **common,
        )
    except Exception as exc:  # a model that crashes on valid input is logged and refused, never a 500
        raise _refuse(
            ServingError(f"The model could not predict on this input: {exc}", status=422, code="prediction_failed"),
            outcome=Outcome.ERROR,
            version=version,
            inputs=loggable,
            **common,
        )
    outputs: dict[str, Any] = {"predictions": result.labels}
    if result.probabilities is not None:
        outputs["probabilities"] = result.probabilities
        outputs["classes"] = version.classes
    try:
        record = _write(
            outcome=Outcome.OK, version=version, inputs=instances, outputs=outputs, engine_name=result.engine, **common
        )
    except DatabaseError:
        raise ServingError(
            "The prediction could not be logged, so it is not returned. Try again later.",
            status=503,
            code="log_unavailable",
        )
    return Served(record=record, version=version, labels=result.labels, probabilities=result.probabilities)
