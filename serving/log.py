"""The prediction log: a record's layout, its canonical JSON texts, its Merkle leaf and MAC;
write() seals one record and has it written (serving.writers) before any answer leaves.

The statements are raw SQL (serving.statements), sent with each field's `get_db_prep_save()`
value, which is what the ORM's own INSERT compiler sends; a field whose value needs more than
that (a database default, say) would need its own path.

The guarded INSERT: an answer's record is inserted with INSERT ... SELECT ... WHERE the version
row still has the artifact hash and a status that may answer (and the client key is still not
revoked), so a process that remembered a version or key from an earlier request can never log,
and so return, an answer from a version that stopped being servable."""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import secrets
import time
import uuid
from dataclasses import dataclass
from json import encoder as json_encoder
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from core import caches
from core.actors import Actor, pk_of
from core.canonical import canonical_json, canonical_number
from core.keyfiles import read_or_create
from lifecycle.models import ModelVersion
from serving import merkle
from serving.models import ApiKey, Disposition, PredictionLog
from serving.writers import NewKeys, writer


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
    user: Actor
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
    # New data subjects' keys, which the record's ciphertexts name, written by the record's own
    # INSERT (PostgreSQL): all of them and the record, or nothing (the guarded write then
    # returns None, as for a version no longer servable). One statement instead of two.
    new_keys: NewKeys | None = None
    source: str = "api"  # serving.models.LogSource


def dump_json(value: Any, *, arrays: bool = False) -> str:
    """Compact JSON with sorted keys, as stored in the log and hashed as stored. orjson writes a
    1,000-row batch about 10x faster than json.dumps; what it cannot write (integers beyond 64
    bits, say) falls back to the standard library, so a refusal is still logged. `arrays`: the
    value may hold float64 or int64 numpy arrays (a batch chunk's probabilities), written
    exactly as their .tolist() would be."""
    option = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
    try:
        return orjson.dumps(value, option=option | orjson.OPT_SERIALIZE_NUMPY if arrays else option).decode()
    except (TypeError, orjson.JSONEncodeError):
        if arrays:
            return dump_json(_as_lists(value))
        return canonical_json(value)


def _as_lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _as_lists(v) for k, v in value.items()}
    return value.tolist() if hasattr(value, "tolist") else value


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
    batch = source and source != "api" and batch_job_id is not None
    if (
        _TEXT is type(model) is type(caller) is type(request_id) is type(protocol) is type(outcome) is type(reason)
        and _TEXT is type(engine) is type(inputs_json) is type(outputs_json)
        and (not source or type(source) is _TEXT)
        and type(n_rows) is int
        and (version is None or type(version) is int)
        and (version_id is None or type(version_id) is int)
        and (not batch or (type(batch_job_id) is int and (batch_chunk is None or type(batch_chunk) is int)))
    ):
        # What canonical_json() writes of this dict, written directly (a verification recomputes
        # a leaf per record): keys in sorted order, each value as json.dumps writes it
        # (tests/serving/test_leaf_text.py compares the two on hostile values).
        q = _quote
        meta = (
            "{"
            + (f'"batch":{{"chunk":{_int(batch_chunk)},"job":{batch_job_id!r}}},' if batch else "")
            + (f'"business_keys":{canonical_json(orjson.loads(business_keys_json))},' if business_keys_json else "")
            + f'"caller":{q(caller)},"created_at":{q(created_at.isoformat())},"engine":{q(engine)},'
            f'"id":{q(str(public_id))},"latency_ms":{_float_repr(canonical_number(latency_ms))},"model":{q(model)},'
            f'"n_rows":{n_rows!r},"outcome":{q(outcome)},"protocol":{q(protocol)},"reason":{q(reason)},'
            f'"request_id":{q(request_id)},'
            + (f'"source":{q(source)},' if source and source != "api" else "")
            + f'"version":{_int(version)},"version_id":{_int(version_id)}}}'
        )
        return merkle.leaf_hash(f"{meta}\x1e{inputs_json}\x1e{outputs_json}".encode())
    meta = canonical_json(
        _meta(public_id, created_at, model, version, version_id, caller, request_id, protocol, outcome, reason,
              n_rows, engine, latency_ms, business_keys_json, source, batch_job_id, batch_chunk)
    )  # fmt: skip
    return merkle.leaf_hash("\x1e".join((meta, inputs_json, outputs_json)).encode())


_TEXT = str
_quote = json_encoder.encode_basestring  # how json.dumps(ensure_ascii=False) writes a str
_float_repr = float.__repr__  # how it writes a float


def _int(value: int | None) -> str:
    return "null" if value is None else int.__repr__(value)


def _meta(
    public_id: Any, created_at: Any, model: Any, version: Any, version_id: Any, caller: Any, request_id: Any,
    protocol: Any, outcome: Any, reason: Any, n_rows: Any, engine: Any, latency_ms: Any, business_keys_json: Any,
    source: Any, batch_job_id: Any, batch_chunk: Any,
) -> dict[str, Any]:  # fmt: skip
    """The metadata a leaf covers, as a dict (leaf_of() writes the same text directly)."""
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
    return meta


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
    ok = entry.outcome == Disposition.OK
    inputs = entry.inputs
    record = PredictionLog(
        public_id=entry.public_id or uuid.uuid4(),
        created_at=timezone.now(),
        model_name=_text(entry.model_name)[:64],
        version=entry.version,
        version_number=entry.version.version if entry.version else None,
        api_key=entry.api_key,
        user_id=pk_of(entry.user),  # a person's; None for a client key (no user) and for anonymous
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
    index = [index_key(k)[:200] for k in record.business_keys] if entry.business_keys else None
    return record if writer().insert_record(record, guard, entry.new_keys, index) else None


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
    """Write records built by sealed_form() in bulk, inside the caller's transaction (COPY on
    PostgreSQL). public_id is the record's identity for callers, so the database ids are not
    read back."""
    writer().write_many(records)


@functools.cache
def _mac_key() -> bytes:
    if settings.LOG_MAC_KEY:
        return settings.LOG_MAC_KEY.encode()
    if not settings.DEBUG:
        raise ImproperlyConfigured("LOG_MAC_KEY must be set when DEBUG=False (the prediction log's MAC key).")
    return read_or_create(settings.LOG_MAC_KEY_FILE, lambda: secrets.token_hex(32), what="LOG_MAC_KEY").encode()


@functools.cache
def _mac() -> hmac.HMAC:
    """HMAC-SHA256 under the log's MAC key, keyed once: each message's MAC starts from a copy (the
    personal-data path takes two per logged row, and hmac.digest() pads the key anew each call)."""
    return hmac.new(_mac_key(), digestmod=hashlib.sha256)


def mac_of(leaf: bytes) -> str:
    """HMAC-SHA256 of a record's Merkle leaf under the log's MAC key."""
    return keyed_digest(leaf).hex()


def mac_matches(leaf: bytes, mac: str) -> bool:
    """Whether `mac` is mac_of(leaf), compared in constant time."""
    return hmac.compare_digest(mac, keyed_digest(leaf).hex())


def keyed_digest(message: bytes) -> bytes:
    """HMAC-SHA256 of `message` under the log's MAC key."""
    mac = _mac().copy()
    mac.update(message)
    return mac.digest()


def keyed_hexdigests(messages: list[bytes]) -> list[str]:
    """keyed_digest(m).hex() of each message (two per logged row of a version with personal data)."""
    copy = _mac().copy
    out = []
    for message in messages:
        mac = copy()
        mac.update(message)
        out.append(mac.hexdigest())
    return out


def forget_mac_key() -> None:
    _mac_key.cache_clear()
    _mac.cache_clear()


caches.register("serving.log.mac_key", forget_mac_key)
