"""Serving a prediction, top to bottom: one PredictionRequest in, one Served out.

predict() resolves the servable version, turns the request into checked rows, runs the engine,
and writes the log record BEFORE the answer is returned (serving.log). If the record cannot be
written the caller gets 503 and no prediction. Every refusal is logged too, and reaches the
interface as one domain exception, ServingError (KeyRevoked for a key revoked since this process
remembered it), which v1 and v2 map to their own status and body."""

from __future__ import annotations

import functools
import hashlib
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from django.db import DatabaseError

from core.actors import Actor
from core.roles import roles_of
from lifecycle.errors import ArtifactIntegrityError
from lifecycle.models import ModelVersion
from serving import decisions, engine, keys, log, personal, subject_keys
from serving.errors import ServingError
from serving.inputs import check_rows, tensors_to_rows
from serving.models import ApiKey, Disposition, PredictionLog
from serving.selectors import (
    answering_statuses,
    answers_as_fallback,
    forget_servable_version,
    recent_servable_version,
)
from serving.writers import writer

LOG_UNAVAILABLE = "The prediction log is unavailable."


@dataclass
class Caller:
    user: Actor
    api_key: ApiKey | None

    @property
    def name(self) -> str:
        if self.api_key is not None:
            return f"api-key:{self.api_key.name}"
        return getattr(self.user, "username", "") or "anonymous"

    @property
    def may_predict(self) -> bool:
        """A client key (bound to no user) may; a person, or a key bound to one, needs a role."""
        if self.api_key is not None and self.api_key.user_id is None:
            return True
        return bool(roles_of(self.user))


@dataclass
class PredictionRequest:
    """What an interface parsed from one request. `instances` are v1 rows; `tensors` are v2 input
    tensors, turned into rows against the resolved version's schema. `problem` is what the
    interface found wrong before any of that (a malformed body): it is logged and refused."""

    caller: Caller
    model_name: str
    protocol: str
    version_number: int | None = None
    request_id: str = ""
    instances: Any = None
    tensors: list[Any] | None = None
    problem: ServingError | None = None
    business_keys: Any = None  # one per row (v1 "business_keys", v2 parameters.business_keys)
    body: bytes | None = None  # the raw request body, if the interface passes it: a refusal logs its digest
    explain: bool = False  # v1 "explain": true: each row's explanation is logged and returned
    started: float = field(default_factory=time.perf_counter)

    def entry(self, outcome: str, **fields: Any) -> log.Entry:
        return log.Entry(
            model_name=self.model_name,
            api_key=self.caller.api_key,
            user=self.caller.user,
            caller=self.caller.name,
            request_id=self.request_id,
            protocol=self.protocol,
            outcome=outcome,
            started=self.started,
            **fields,
        )


@dataclass
class Served:
    record: PredictionLog
    version: ModelVersion
    labels: list[Any]
    probabilities: list[list[float]] | None
    explanations: list[dict[str, Any]] | None = None
    business_keys: list[str] | None = None  # as the client sent them (the log may hold their hashes)

    @property
    def prediction_ids(self) -> list[str]:
        prefix = str(self.record.public_id)  # once, not once per row
        return [f"{prefix}.{i}" for i in range(self.record.n_rows)]


@dataclass(frozen=True)
class Refusal:
    """Why a request is not answered; predict() logs it and raises its error. `certain`: it would
    be refused whatever the version's state (its stored files are wrong), so looking the version
    up again would change nothing. `stale`: the guarded write found the version no longer
    servable or the key revoked, and wrote nothing (looked at again once, then refused)."""

    error: ServingError
    outcome: str
    inputs: Any = None
    certain: bool = False
    version: ModelVersion | None = None  # the version that refused, if one was resolved
    stale: bool = False


def predict(request: PredictionRequest) -> Served:
    """Answer a prediction request, logged; raises ServingError (logged) when refused. The one
    place a refusal is logged and raised: everything below returns a Served or a Refusal."""
    answer = _served_or_refused(request)
    if isinstance(answer, Refusal):
        raise _logged(request, answer)
    return answer


def _served_or_refused(request: PredictionRequest) -> Served | Refusal:
    """It starts from what this process resolved before (the version, a client key), without a
    round trip: the guarded INSERT is the authority. If the write finds the version no longer
    servable or the key revoked, or a remembered version would refuse, both are looked up again,
    once, and a refusal is only given after that fresh look."""
    if request.problem is not None:
        outcome = Disposition.INVALID if request.problem.status in (400, 413) else Disposition.REFUSED
        return Refusal(request.problem, outcome, _loggable(request, None))
    if "\x00" in request.request_id:
        problem = ServingError("The request id must not contain the NUL character.", status=400, code="invalid_input")
        return Refusal(problem, Disposition.INVALID, [])
    if not request.caller.may_predict:
        problem = ServingError("Your account has no role that may request predictions.", status=403, code="forbidden")
        return Refusal(problem, Disposition.REFUSED, [])
    first = _attempt(request, fresh=False, earlier=None)
    if isinstance(first, Served) or first.certain:
        return first
    forget_servable_version(request.model_name, request.version_number)
    return _attempt(request, fresh=True, earlier=None if first.stale else first)


def _attempt(request: PredictionRequest, *, fresh: bool, earlier: Refusal | None) -> Served | Refusal:
    """Resolve the version (`fresh`: from the database, the client key read again first) and
    answer from it; `earlier`: the refusal of a first attempt from a remembered version."""
    if fresh and request.caller.api_key is not None:
        keys.recheck_key(request.caller.api_key)  # revoked meanwhile: KeyRevoked, as at the door
    try:
        version = recent_servable_version(request.model_name, request.version_number, fresh=fresh)
    except ServingError as exc:  # (asked of the database: looking again would change nothing)
        return Refusal(exc, Disposition.REFUSED, [], certain=True)
    if earlier is not None and _same_artifact(earlier.version, version):
        # Still servable, the very same version and artifact: the refusal stands, without
        # checking the rows or running the model a second time.
        return replace(earlier, version=version)
    result = _answer(version, request)
    return result if isinstance(result, Served) else replace(result, version=version)


def _same_artifact(before: ModelVersion | None, now: ModelVersion) -> bool:
    return before is not None and (before.pk, before.artifact_sha256) == (now.pk, now.artifact_sha256)


# A refusal's rows are logged whole only while their JSON is this short; beyond, a sample is.
MAX_SAMPLE_CHARS = 64 * 1024


def _loggable(request: PredictionRequest, rows: Any) -> Any:
    """What a refusal logs of what was sent, bounded so that a flood of invalid requests cannot
    grow the log by its own size: the rows themselves when there are at most
    REFUSED_LOG_SAMPLE_ROWS of them in at most MAX_SAMPLE_CHARS of JSON; else an object with the first
    rows that fit, how many were sent, and the SHA-256 and size of what was sent (the request
    body when the interface passed it, else the inputs as compact JSON with sorted keys)."""
    if rows is None and request.tensors is None and request.body is None:
        return []  # nothing was sent (a malformed body the interface did not pass on)
    limit = settings.REFUSED_LOG_SAMPLE_ROWS
    whole = isinstance(rows, list) and len(rows) <= limit
    if whole and len(log.dump_json(rows)) <= MAX_SAMPLE_CHARS:
        return rows
    sample: list[Any] = []
    size = 0
    for row in rows[:limit] if isinstance(rows, list) else []:
        size += len(log.dump_json(row))
        if size > MAX_SAMPLE_CHARS:
            break
        sample.append(row)
    if request.body is not None:
        sent, digest_of = request.body, "request body"
    else:
        what = rows if rows is not None else request.tensors
        sent, digest_of = log.dump_json(what).encode(), "inputs as compact JSON"
    return {
        "rows_sent": len(rows) if isinstance(rows, list) else None,
        "sample": sample,
        "sha256": hashlib.sha256(sent).hexdigest(),
        "bytes": len(sent),
        "digest_of": digest_of,
    }


def _answer(version: ModelVersion, request: PredictionRequest) -> Served | Refusal:
    """Check, predict and log an answer from `version`. A Refusal is returned, not logged (the
    caller decides whether to look again first); a `stale` one when the guarded write found the
    version no longer servable or the key revoked, and nothing was logged or returned."""
    rows = request.instances if request.tensors is None else None
    try:
        if request.tensors is not None:
            rows = tensors_to_rows(request.tensors, version.input_schema)
        checked = check_rows(rows, version.input_schema, max_rows=settings.SERVING_MAX_ROWS)
    except ServingError as exc:
        return Refusal(exc, Disposition.INVALID, _loggable(request, rows))
    keys_problem = business_keys_problem(request.business_keys, len(checked))
    if keys_problem is not None:
        return Refusal(keys_problem, Disposition.INVALID, _loggable(request, rows))
    try:
        result = engine.predict(version, checked)
    except ServingError as exc:  # the manifest no longer matches its approvals: suspended, refused
        return Refusal(exc, Disposition.REFUSED, _loggable(request, rows), certain=True)
    except ArtifactIntegrityError as exc:
        # (the stored files are wrong whatever the version's status: looking again would only
        # record the tampering twice)
        error = ServingError(exc.message, status=503, code="artifact_tampered")
        return Refusal(error, Disposition.ERROR, _loggable(request, rows), certain=True)
    except OSError as exc:  # the stored artifact or ONNX file cannot be read
        error = ServingError(f"The model's stored files cannot be read ({exc}).", status=503, code="model_unavailable")
        return Refusal(error, Disposition.ERROR, _loggable(request, rows), certain=True)
    except Exception as exc:  # a model that crashes on valid input is logged and refused, never a 500
        error = ServingError(f"The model could not predict on this input: {exc}", status=422, code="prediction_failed")
        return Refusal(error, Disposition.ERROR, _loggable(request, rows))
    outputs: dict[str, Any] = {"predictions": result.labels}
    if result.probabilities is not None:
        outputs["probabilities"] = result.probabilities
        outputs["classes"] = version.classes
    if request.explain:
        try:
            outputs["explanations"] = decisions.explain_rows(
                version, checked, result.labels, tensors=result.tensors, frame=result.frame
            )
        except ArtifactIntegrityError as exc:
            error = ServingError(exc.message, status=503, code="artifact_tampered")
            return Refusal(error, Disposition.ERROR, _loggable(request, rows), certain=True)
        except Exception as exc:  # never a 500: the request is refused and logged
            error = ServingError(f"The rows could not be explained: {exc}", status=422, code="explanation_failed")
            return Refusal(error, Disposition.ERROR, _loggable(request, rows))
    key = request.caller.api_key
    fallback = answers_as_fallback(version)
    guard = log.Guard(
        version.pk,
        version.artifact_sha256,
        version.manifest_sha256,
        answering_statuses(named=request.version_number is not None or fallback),
        key.pk if key is not None else None,
        fallback=fallback,
    )
    explanations = outputs.get("explanations")
    keys = [str(k) for k in request.business_keys] if request.business_keys else None
    record_id = uuid.uuid4()
    record: PredictionLog | Refusal | None
    if personal.declares_personal(version):  # its new subjects' keys are written with the record (serving.writers)
        seal_and_write = functools.partial(
            _write_personal_answer, request, version, checked, result, outputs, explanations, keys, record_id, guard
        )
        record = writer().answer_with_keys(seal_and_write, subject_keys.NewKeys)
    else:
        record = _write_answer(request, version, checked, result, outputs, keys, record_id, guard, None)
    if isinstance(record, Refusal):
        return record
    if record is None:
        # Servable when looked up, no longer when written: it changed under this very request.
        stopped = ServingError(
            f"{request.model_name} stopped being servable while this request was answered; nothing was returned.",
            status=403,
            code="version_not_servable",
        )
        return Refusal(stopped, Disposition.REFUSED, [], stale=True)
    return Served(
        record=record,
        version=version,
        labels=result.labels,
        probabilities=result.probabilities,
        business_keys=keys,
        explanations=explanations,
    )


def _write_personal_answer(
    request: PredictionRequest, version: ModelVersion, rows: list[dict[str, Any]], result: Any, outputs: dict[str, Any],
    explanations: list[Any] | None, keys: list[str] | None, record_id: uuid.UUID, guard: log.Guard,
    pending: subject_keys.NewKeys | None,
) -> PredictionLog | Refusal | None:  # fmt: skip
    """Seal the personal values (serving.personal) and write the answer's record: the record, a
    Refusal when the personal keys cannot be used, or None when the guarded write wrote nothing."""
    try:  # personal values are stored encrypted under their subject's key (serving.personal)
        if explanations is not None:
            outputs["explanations"] = list(explanations)  # the log's copy is sealed, the client's is not
        stored_rows, stored_keys = personal.protect(
            version, request.model_name, rows, keys, record_id,
            explanations=outputs.get("explanations"), pending=pending,
        )  # fmt: skip
    except subject_keys.KeysUnavailable as exc:
        return Refusal(exc, Disposition.ERROR, [], certain=True)
    except DatabaseError:
        raise ServingError(LOG_UNAVAILABLE, status=503, code="log_unavailable")
    return _write_answer(request, version, stored_rows, result, outputs, stored_keys, record_id, guard, pending)


def _write_answer(
    request: PredictionRequest, version: ModelVersion, stored_rows: list[dict[str, Any]], result: Any,
    outputs: dict[str, Any], stored_keys: list[str] | None, record_id: uuid.UUID, guard: log.Guard,
    pending: subject_keys.NewKeys | None,
) -> PredictionLog | None:  # fmt: skip
    """Write the answer's record (its rows and keys as the log stores them): None when the guarded
    write wrote nothing; 503 when the log cannot be written (no prediction leaves)."""
    entry = request.entry(
        Disposition.OK,
        version=version,
        inputs=stored_rows,
        outputs=outputs,
        engine=result.engine,
        business_keys=stored_keys,
        public_id=record_id,
        new_keys=pending,
    )
    try:
        return log.write(entry, guard)
    except DatabaseError:
        raise ServingError(
            "The prediction could not be logged, so it is not returned. Try again later.",
            status=503,
            code="log_unavailable",
        )


MAX_BUSINESS_KEY = 200


def business_keys_problem(keys: Any, n_rows: int) -> ServingError | None:
    """None when the keys are absent or one non-empty text (or integer) of at most 200
    characters per row; else the named 400."""
    if keys is None:
        return None

    def bad(message: str) -> ServingError:
        return ServingError(message, status=400, code="invalid_business_keys")

    if not isinstance(keys, list):
        return bad('"business_keys" must be a list with one key per instance.')
    if len(keys) != n_rows:
        return bad(f'"business_keys" has {len(keys)} keys for {n_rows} instances: send one key per instance.')
    for i, key in enumerate(keys):
        if isinstance(key, bool) or not isinstance(key, (str, int)) or str(key).strip() == "":
            return bad(f"business key {i} must be a non-empty text.")
        if len(str(key)) > MAX_BUSINESS_KEY or "\x00" in str(key):
            return bad(f"business key {i} is longer than {MAX_BUSINESS_KEY} characters or holds NUL.")
    return None


def log_refusal(request: PredictionRequest, error: ServingError, outcome: str) -> ServingError:
    """Log a refusal decided before the request reached predict() (a key over its daily quota);
    returns the error to raise: `error`, or a 503 when even the refusal cannot be logged."""
    return _logged(request, Refusal(error, outcome, _loggable(request, None)))


def _logged(request: PredictionRequest, refusal: Refusal) -> ServingError:
    """Log a refusal and return the error to raise (503 when even the refusal cannot be logged:
    no prediction leaves either way)."""
    key = request.caller.api_key
    try:
        if key is not None and key.user_id is None:
            # A client key may have been remembered from an earlier request and revoked since: a
            # revoked key gets 401 as at the door, not a logged refusal.
            keys.recheck_key(key)
        error = refusal.error
        entry = request.entry(
            refusal.outcome,
            version=refusal.version,
            reason=f"{error.code}: {error.message}",
            inputs=personal.redact(refusal.version, refusal.inputs),  # a refusal keeps no personal value
        )
        log.write(entry)
    except DatabaseError:
        return ServingError(LOG_UNAVAILABLE, status=503, code="log_unavailable")
    return refusal.error
