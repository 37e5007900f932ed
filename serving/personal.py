"""Personal data in the prediction log (DESIGN.md, "Personal data").

A version declares its personal input fields and the field that names the data subject (an
input, or "business_key"). Before a record is written, the personal values of each row are
encrypted together, once, with AES-256-GCM under a data key of (model, subject, UTC month), bound
to their place (record, row) as associated data: the row's first personal field holds
{"$enc": "<key id>:<base64 nonce+ciphertext>", "$row": 1} and the others {"$enc": "^"}. (Records
written before held one ciphertext per value, bound to (record, row, field); both are read.) Data
keys are stored wrapped by the key encryption key LOG_KEK, outside the database. The Merkle leaf
and the MAC cover what is stored, so destroying a data key (erasure, retention) makes its
values read "[erased]" everywhere while every seal and inclusion proof still verifies.

When the subject field is the business key, the key itself is personal: the log keeps a keyed
hash of it (for lookup by business key), and its value is sealed in its row's ciphertext (for
display).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import threading
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core import audit, envelope
from core.envelope import decode_key as _decode_key  # noqa: F401  (re-exported: moved to core.envelope)
from core.envelope import kek_aead as _kek_aead  # noqa: F401
from core.envelope import kek_id  # noqa: F401
from core.envelope import keks as _keks
from core.envelope import wrap as _wrap
from core.evidence import evidence
from core.roles import RISK_OFFICERS, has_role
from lifecycle import dataset_store
from serving import rawsql
from serving.errors import ServingError
from serving.log import Prelude, keyed_digest, keyed_hexdigests
from serving.models import LegalHold, PredictionKey, SubjectKey

ERASED = "[erased]"
ENC = "$enc"
BUSINESS_KEY = "business_key"
KEY_PREFIX = "h:"  # a stored personal business key: "h:<keyed hash>" (its value sealed in its row)
ROW = "$row"  # marks the value holding a row's sealed personal values
IN_ROW = "^"  # {"$enc": "^"}: a personal value sealed in its row's ciphertext


class KeysUnavailable(ServingError):
    """The data keys cannot be unwrapped (a wrong or missing LOG_KEK): nothing personal is read
    or written in clear; serving answers 503."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=503, code="personal_keys_unavailable")


# --- the key encryption key (core.envelope, shared with the datasets' keys) ------------------
def forget_keys() -> None:
    """After a change of LOG_KEK (tests, rotation): read the settings again, drop cached keys."""
    envelope.forget_keks()
    with _lock:
        _writing.clear()
        _reading.clear()
        _kek_checked.clear()


def _unwrap(key_id_: str, wrapped: bytes) -> bytes:
    try:
        return envelope.unwrap(key_id_, wrapped)
    except envelope.KekUnavailable as exc:
        raise KeysUnavailable(exc.message) from None


# --- subjects and their keys --------------------------------------------------------------
def subject_hash(model_name: str, subject: Any) -> str:
    """The hash a subject named by an input field has its keys under (in the model's keys)."""
    return keyed_digest(f"subject\x1f{model_name}\x1f{subject}".encode()).hex()


def subject_hashes(model_name: str, subject: Any) -> list[str]:
    """Every hash the subject's keys may be under: subject_hash() and, for a subject named by
    its business key, the whole keyed hash of that key (its rows take one HMAC, not two: the
    same hash is the key's lookup form, truncated)."""
    return [subject_hash(model_name, subject), keyed_digest(f"business-key\x1f{subject}".encode()).hex()]


def business_key_hash(key: Any) -> str:
    """The keyed hash a personal business key is found by (the same for every model): 128 bits
    of HMAC-SHA256, in hex."""
    return business_key_lookups(key)[0]


HASH_HEX = 32  # 128 bits; records written before kept all 64 hex digits


def business_key_lookups(key: Any) -> list[str]:
    """The forms a personal business key is indexed under: its keyed hash as written now and,
    in records written before, the whole 256-bit hash."""
    full = keyed_digest(f"business-key\x1f{key}".encode()).hex()
    return [KEY_PREFIX + full[:HASH_HEX], KEY_PREFIX + full]


def month_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date().replace(day=1)


_lock = threading.Lock()
# (model, month) -> (when its keys started being remembered, subject hash -> key). The keys are
# forgotten together once that is SUBJECT_KEY_CACHE_SECONDS ago, so no key is used from memory
# longer than that, and a request finds which of its subjects are remembered with one set
# difference instead of a lookup and a time comparison per row.
_writing: dict[tuple[str, date], tuple[float, dict[str, tuple[int, AESGCM]]]] = {}
_kek_checked: list[float] = []
KEYS_REMEMBERED = 100_000  # per model and month, per process
_reading: dict[tuple[int, str, bytes], bytes] = {}


def _write_keys(
    model_name: str, hashes: set[str], month: date, pending: NewKeys | None = None
) -> dict[str, tuple[int, AESGCM]]:
    """The live data key of each subject for this month (ready to encrypt), made on first use. A
    process keeps them SUBJECT_KEY_CACHE_SECONDS: an erasure reaches every process's new answers
    within that time. With `pending` (PostgreSQL, a few new subjects), new keys are not written
    here: they go into `pending`, for the record's own INSERT to write (log.Prelude)."""
    cached = _remembered((model_name, month))
    missing = hashes.difference(cached)  # (looks up each of hashes: `- cached.keys()` walked the whole dict)
    # (the remembered keys are only ever added to, never changed: a new dict replaces them)
    found = cached if not missing else {h: cached[h] for h in hashes - missing}
    if missing and pending is not None and len(missing) <= NEW_KEYS_WITH_RECORD and connection.vendor == "postgresql":
        _require_known_kek()
        for h, pk in zip(sorted(missing), _reserve_ids(len(missing)), strict=True):
            data_key = AESGCM.generate_key(bit_length=256)
            key_id_, wrapped = _wrap(data_key)
            found[h] = (pk, AESGCM(data_key))
            pending.add(model_name, h, month, pk, wrapped, key_id_, found[h][1])
        return found
    if missing:
        _require_known_kek()
        for h, (pk, data_key) in _make_keys(model_name, missing, month).items():
            found[h] = (pk, AESGCM(data_key))
        made_elsewhere = missing - found.keys()  # by another process meanwhile
        for pk, h, wrapped, key_id_ in _live_keys(model_name, made_elsewhere, month) if made_elsewhere else []:
            found[h] = (pk, AESGCM(_unwrap(key_id_, wrapped)))
        # Inside the record's transaction the keys are remembered once they are committed with
        # it: a rolled-back key must never be used for a later record.
        _remember_on_commit({(model_name, month): {h: found[h] for h in missing}})
    return found


NEW_KEYS_WITH_RECORD = 8  # a request with more new subjects writes their keys in one statement of its own
_reserved: list[int] = []


def _reserve_ids(n: int) -> list[int]:
    """n ids for new subject keys, taken from the table's sequence 64 at a time (one round trip
    per 64 new subjects; an id taken and never used is only a gap)."""
    with _lock:
        if len(_reserved) < n:
            table = SubjectKey._meta.db_table
            _reserved.extend(
                pk
                for (pk,) in rawsql.fetch(
                    "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                    [table, max(64, n)],
                )
            )
        taken, _reserved[:n] = _reserved[:n], []
    return taken


class NewKeys:
    """New subjects' keys made for one record, written by its INSERT (prelude()) and remembered
    once that commits (remember())."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.ready: dict[tuple[str, date], dict[str, tuple[int, AESGCM]]] = {}

    def add(self, model_name: str, h: str, month: date, pk: int, wrapped: bytes, key_id_: str, aead: AESGCM) -> None:
        self.rows.append((pk, model_name, h, month, wrapped, key_id_, timezone.now()))
        self.ready.setdefault((model_name, month), {})[h] = (pk, aead)

    def prelude(self) -> Prelude | None:
        if not self.rows:
            return None
        table = connection.ops.quote_name(SubjectKey._meta.db_table)
        values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, NULL, '')"] * len(self.rows))
        sql = (
            f"INSERT INTO {table} (id, model_name, subject_hash, month, wrapped, kek_id, created_at, erased_at, "  # noqa: S608
            f"erased_because) VALUES {values} ON CONFLICT DO NOTHING RETURNING 1"
        )
        return Prelude(sql, tuple(v for row in self.rows for v in row), len(self.rows))

    def remember(self) -> None:
        """After the record and these keys were written: keep the keys for later records once
        the transaction commits."""
        _remember_on_commit(self.ready)


def _remember_on_commit(keys: dict[tuple[str, date], dict[str, tuple[int, AESGCM]]]) -> None:
    """Keep new keys, by (model, month) and subject hash, for later records once the current
    transaction commits (at once outside one), at most KEYS_REMEMBERED per model and month."""

    def remember() -> None:
        for place, entries in keys.items():
            remembered = _remembered(place)
            with _lock:
                if len(remembered) > KEYS_REMEMBERED:  # a bound on memory: start again
                    remembered = {}
                    _writing[place] = (time.monotonic(), remembered)
                remembered.update(entries)

    transaction.on_commit(remember)


def _remembered(place: tuple[str, date]) -> dict[str, tuple[int, AESGCM]]:
    """The keys this process remembers for (model, month), none once they were first remembered
    SUBJECT_KEY_CACHE_SECONDS ago (an erasure reaches every process's new answers within that
    time)."""
    now = time.monotonic()
    with _lock:
        born, remembered = _writing.get(place, (0.0, {}))
        if not remembered or born <= now - settings.SUBJECT_KEY_CACHE_SECONDS:
            remembered = {}
            _writing[place] = (now, remembered)
    return remembered


def _make_keys(model_name: str, hashes: set[str], month: date) -> dict[str, tuple[int, bytes]]:
    """New keys for the subjects that have none this month, in one statement; a subject whose key
    another process made first is left out (the unique live key per subject and month) and read
    back by the caller like any other."""
    new = {h: AESGCM.generate_key(bit_length=256) for h in sorted(hashes)}
    wrapped = {h: _wrap(k) for h, k in new.items()}
    if connection.vendor == "postgresql":  # one round trip: INSERT ... ON CONFLICT DO NOTHING RETURNING
        table = connection.ops.quote_name(SubjectKey._meta.db_table)
        values = ", ".join(["(%s, %s, %s, %s, %s, %s, NULL, '')"] * len(new))
        params: list[Any] = []
        stamp = timezone.now()
        for h in new:
            params += [model_name, h, month, wrapped[h][1], wrapped[h][0], stamp]
        sql = (
            f"INSERT INTO {table} (model_name, subject_hash, month, wrapped, kek_id, created_at, erased_at, "  # noqa: S608
            f"erased_because) VALUES {values} ON CONFLICT (model_name, subject_hash, month) WHERE erased_at IS NULL "
            "DO NOTHING RETURNING id, subject_hash"
        )
        return {h: (pk, new[h]) for pk, h in rawsql.fetch(sql, params)}  # prepared: planned once per connection
    rows = [
        SubjectKey(model_name=model_name, subject_hash=h, month=month, wrapped=w[1], kek_id=w[0])
        for h, w in wrapped.items()
    ]
    SubjectKey.objects.bulk_create(rows, ignore_conflicts=True)
    made = {}
    for pk, h, stored, _ in _live_keys(model_name, set(new), month):
        if bytes(stored) == wrapped[h][1]:  # ours, not another process's
            made[h] = (pk, new[h])
    return made


def _require_known_kek() -> None:
    """A new key is never made under a KEK that cannot open the keys already there: with a
    wrong LOG_KEK serving refuses (503) rather than log under a key nobody can read later.
    Asked of the database once per SUBJECT_KEY_CACHE_SECONDS per process."""
    if _kek_checked and time.monotonic() - _kek_checked[0] < settings.SUBJECT_KEY_CACHE_SECONDS:
        return
    _, keys = _keks()
    if SubjectKey.objects.filter(erased_at__isnull=True).exclude(kek_id__in=list(keys)).exists():
        raise KeysUnavailable(
            "The personal data in the log cannot be written: LOG_KEK is not the key its data keys were wrapped "
            "with (a wrong key, or a rotation without LOG_KEK_PREVIOUS)."
        )
    _kek_checked[:] = [time.monotonic()]


def _live_keys(model_name: str, hashes: set[str], month: date) -> list[Any]:
    return list(
        SubjectKey.objects.filter(
            model_name=model_name, subject_hash__in=hashes, month=month, erased_at__isnull=True
        ).values_list("pk", "subject_hash", "wrapped", "kek_id")
    )


def _read_keys(ids: set[int]) -> dict[int, bytes | None]:
    """Data keys by id, asked of the database every time (so an erased key is never used),
    unwrapped once per process; None for an erased key."""
    out: dict[int, bytes | None] = {}
    for pk, wrapped, key_id_ in SubjectKey.objects.filter(pk__in=ids).values_list("pk", "wrapped", "kek_id"):
        if wrapped is None:
            out[pk] = None
            continue
        cache_key = (pk, key_id_, bytes(wrapped))
        key = _reading.get(cache_key)
        if key is None:
            key = _unwrap(key_id_, bytes(wrapped))
            with _lock:
                if len(_reading) > 100_000:
                    _reading.clear()
                _reading[cache_key] = key
        out[pk] = key
    return out


# --- writing and reading values -------------------------------------------------------------
def _seal(key_pk: int, aead: AESGCM, value: Any, place: str, nonce: bytes | None = None) -> dict[str, str]:
    nonce = nonce or os.urandom(12)
    sealed = aead.encrypt(nonce, orjson.dumps(value), place.encode())
    return {ENC: f"{key_pk}:{base64.b64encode(nonce + sealed).decode()}"}


def declares_personal(version: Any) -> bool:
    return bool(version is not None and version.personal_features)


def protect(
    version: Any, model_name: str, rows: list[dict[str, Any]], business_keys: list[str] | None, record_id: Any,
    explanations: list[Any] | None = None, pending: NewKeys | None = None,
) -> tuple[list[dict[str, Any]], list[str] | None]:  # fmt: skip
    """The rows (and business keys) as the log stores them. A row's personal values (and its
    personal business key) are encrypted together, once, under its subject's key for this month,
    bound to (record, row): the first personal field holds {"$enc": "<key id>:<base64>", "$row": 1},
    the others {"$enc": "^"} ("in the row's ciphertext"), and the business key is stored as its
    keyed hash alone. `explanations` (one per row, returned with the answer) are encrypted in
    place, each whole. With `pending`, a few new subjects' keys are left for the record's INSERT
    to write (NewKeys)."""
    if not declares_personal(version):
        return rows, business_keys
    subject_field = version.subject_field
    if subject_field == BUSINESS_KEY:
        subjects = [str(k) for k in business_keys] if business_keys else [""] * len(rows)
    elif subject_field:
        subjects = [str(row.get(subject_field, "")) for row in rows]
    else:
        subjects = [""] * len(rows)  # no subject named: one key per month, erased by retention
    if subject_field == BUSINESS_KEY:  # one HMAC a row: the key's lookup form is this hash, truncated
        hashes = keyed_hexdigests([f"business-key\x1f{s}".encode() for s in subjects])
        lookups = [KEY_PREFIX + h[:HASH_HEX] for h in hashes]
    else:
        hashes = keyed_hexdigests([f"subject\x1f{model_name}\x1f{s}".encode() for s in subjects])  # subject_hash()
    keys = _write_keys(model_name, set(hashes), month_of(timezone.now()), pending)
    personal = version.personal_features
    personal_key = bool(business_keys) and subject_field == BUSINESS_KEY
    nonces = os.urandom(12 * len(rows))  # one call, not one per row: a nonce is never reused
    stored = []
    stored_keys = list(business_keys) if business_keys else business_keys
    b64, dumps, place = binascii.b2a_base64, orjson.dumps, f"{record_id}."
    every = set(personal)
    for i, row in enumerate(rows):
        key_pk, aead = keys[hashes[i]]
        present = personal if every <= row.keys() else [name for name in personal if name in row]
        if not present:
            stored.append(row)
            if personal_key:  # nothing else personal in the row: the key sealed on its own
                sealed = _seal(key_pk, aead, subjects[i], f"{record_id}.{i}.{BUSINESS_KEY}")[ENC]
                stored_keys[i] = f"{lookups[i]}|{sealed}"  # type: ignore[index]
            continue
        values = {name: row[name] for name in present}
        if personal_key:
            values[BUSINESS_KEY] = subjects[i]
            stored_keys[i] = lookups[i]  # type: ignore[index]
        nonce = nonces[12 * i : 12 * i + 12]  # _seal(), inline: this loop runs once per logged row
        ciphertext = aead.encrypt(nonce, dumps(values), (place + str(i)).encode())
        copy = {**row, present[0]: {ENC: f"{key_pk}:{b64(nonce + ciphertext, newline=False).decode()}", ROW: 1}}
        for name in present[1:]:
            copy[name] = {ENC: IN_ROW}
        stored.append(copy)
    if explanations is not None:  # an explanation repeats the row's values: sealed whole, like them
        for i, explanation in enumerate(explanations):
            key_pk, data_key = keys[hashes[i]]
            explanations[i] = _seal(key_pk, data_key, explanation, f"{record_id}.{i}.explanation")
    return stored, stored_keys


NOT_LOGGED = "[personal: not logged]"


def redact(version: Any, inputs: Any) -> Any:
    """What a refused request logs of a version with personal fields: their values replaced
    (refused rows answer nobody, so nothing personal is kept of them)."""
    if not declares_personal(version):
        return inputs
    personal = set(version.personal_features) | ({version.subject_field} - {"", BUSINESS_KEY})

    def clean(rows: Any) -> Any:
        if not isinstance(rows, list):
            return rows
        out = []
        for row in rows:
            if isinstance(row, dict) and isinstance(row.get("name"), str) and "data" in row:  # a v2 tensor
                row = {**row, "data": NOT_LOGGED} if row["name"] in personal else row
            elif isinstance(row, dict):
                row = {k: (NOT_LOGGED if k in personal else v) for k, v in row.items()}
            out.append(row)
        return out

    if isinstance(inputs, dict) and "sample" in inputs:
        return {**inputs, "sample": clean(inputs["sample"])}
    return clean(inputs)


def lookup_key(stored: str) -> str:
    """What the business-key index holds for a stored key: the keyed hash of a personal key,
    the key itself otherwise."""
    return stored.split("|", 1)[0] if stored.startswith(KEY_PREFIX) else stored


def _open(value: dict[str, str], keys: dict[int, bytes | None], place: str) -> Any:
    key_pk, _, blob = value[ENC].partition(":")
    data_key = keys.get(int(key_pk))
    if data_key is None:
        return ERASED
    raw = base64.b64decode(blob)
    try:
        return orjson.loads(AESGCM(data_key).decrypt(raw[:12], raw[12:], place.encode()))
    except InvalidTag:
        raise KeysUnavailable(f"The personal value at {place} does not decrypt: it was moved or changed.") from None


def _key_ids(rows: Any, business_keys: list[str]) -> set[int]:
    ids = set()
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict):
            for value in row.values():
                if isinstance(value, dict) and ENC in value and value[ENC] != IN_ROW:
                    ids.add(int(value[ENC].split(":", 1)[0]))
    for key in business_keys:
        if key.startswith(KEY_PREFIX) and "|" in key:
            ids.add(int(key.split("|", 1)[1].split(":", 1)[0]))
    return ids


def _row_values(record_id: Any, i: int, row: dict[str, Any], keys: dict[int, bytes | None]) -> dict[str, Any] | None:
    """The personal values sealed together in row i (None when the row has no such ciphertext);
    each reads ERASED when the subject's key was destroyed."""
    for value in row.values():
        if isinstance(value, dict) and ROW in value:
            opened = _open(value, keys, f"{record_id}.{i}")
            if opened == ERASED:
                return dict.fromkeys([*row, BUSINESS_KEY], ERASED)
            return opened if isinstance(opened, dict) else None
    return None


def read_keys_of(records: Iterable[tuple[Any, list[str] | None]]) -> dict[int, bytes | None]:
    """The data keys of many logged records' (rows, business keys) in one query, for reveal(...,
    keys=): an export reads one chunk of records at a time, not one query per record."""
    ids: set[int] = set()
    for rows, business_keys in records:
        ids |= _key_ids(rows, business_keys or [])
    return _read_keys(ids) if ids else {}


def reveal(
    record_id: Any, rows: Any, business_keys: list[str] | None = None, keys: dict[int, bytes | None] | None = None
) -> tuple[Any, list[str]]:
    """The logged rows and business keys with personal values decrypted, or "[erased]" where
    their key was destroyed. Rows without encrypted values come back as they are. Reads both
    forms: a ciphertext per row (protect) and, in records written before it, one per value.
    `keys`: read_keys_of() over records that include this one (read just before), or None to
    read them now."""
    stored_keys = business_keys or []
    ids = _key_ids(rows, stored_keys)
    if not ids:
        return rows, list(stored_keys)
    keys = _read_keys(ids) if keys is None else keys
    shown = []
    in_rows: dict[int, dict[str, Any]] = {}
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            inner = _row_values(record_id, i, row, keys)
            if inner is not None:
                in_rows[i] = inner
            row = {
                name: (
                    (inner or {}).get(name, ERASED)
                    if ROW in value or value[ENC] == IN_ROW
                    else _open(value, keys, f"{record_id}.{i}.{name}")
                )
                if isinstance(value, dict) and ENC in value
                else value
                for name, value in row.items()
            }
        shown.append(row)
    keys_shown = []
    for i, key in enumerate(stored_keys):
        if key.startswith(KEY_PREFIX) and "|" in key:
            keys_shown.append(_open({ENC: key.split("|", 1)[1]}, keys, f"{record_id}.{i}.{BUSINESS_KEY}"))
        elif key.startswith(KEY_PREFIX) and BUSINESS_KEY in in_rows.get(i, {}):
            keys_shown.append(in_rows[i][BUSINESS_KEY])
        else:
            keys_shown.append(key)
    return shown, keys_shown


def open_explanation(record_id: Any, row: int, value: Any) -> Any:
    """A logged inline explanation, decrypted; ERASED when its subject's key was destroyed."""
    if not (isinstance(value, dict) and ENC in value):
        return value
    keys = _read_keys({int(value[ENC].split(":", 1)[0])})
    return _open(value, keys, f"{record_id}.{row}.explanation")


def reveal_outputs(record_id: Any, outputs: Any) -> Any:
    """The logged outputs with their inline explanations (sealed under each row's subject key)
    decrypted for display, or ERASED once the subject was erased; other outputs as logged."""
    explanations = outputs.get("explanations") if isinstance(outputs, dict) else None
    sealed = [e for e in explanations or [] if isinstance(e, dict) and ENC in e]
    if not sealed:
        return outputs
    keys = _read_keys({int(e[ENC].split(":", 1)[0]) for e in sealed})
    opened = [
        _open(e, keys, f"{record_id}.{i}.explanation") if isinstance(e, dict) and ENC in e else e
        for i, e in enumerate(explanations or [])
    ]
    return {**outputs, "explanations": opened}


def _row_key_id(rows: Any, row: int) -> int | None:
    """The data key of a logged row's personal values (None when the row holds none)."""
    values = rows[row] if isinstance(rows, list) and 0 <= row < len(rows) else None
    for value in values.values() if isinstance(values, dict) else []:
        if isinstance(value, dict) and isinstance(value.get(ENC), str) and value[ENC] != IN_ROW:
            return int(value[ENC].split(":", 1)[0])
    return None


def seal_derived(record: Any, row: int, text: str, what: str) -> str:
    """Text derived from a logged row and stored apart from it (its explanation, an outcome's
    sensitive attributes) encrypted under the row's subject key and bound to (record, row, what),
    so that erasing the subject erases it too. Unchanged when the row holds no personal value.
    Raises 410 inputs_erased when the key was destroyed already."""
    key_id = _row_key_id(record.inputs, row)
    if key_id is None:
        return text
    key = _read_keys({key_id}).get(key_id)
    if key is None:
        raise ServingError(INPUTS_ERASED, status=410, code="inputs_erased")
    return orjson.dumps(_seal(key_id, AESGCM(key), text, f"{record.public_id}.{row}.{what}")).decode()


def open_derived(record_id: Any, row: int, text: str, what: str) -> str | None:
    """The text seal_derived() stored, decrypted; None when its subject's key was destroyed."""
    if not text.startswith('{"' + ENC + '"'):
        return text
    value = orjson.loads(text)
    opened = _open(value, _read_keys({int(value[ENC].split(":", 1)[0])}), f"{record_id}.{row}.{what}")
    return None if opened == ERASED else opened


SENSITIVE = "sensitive"


def seal_attributes(record: Any, row: int, attributes: dict[str, Any] | None) -> dict[str, Any]:
    """An outcome's sensitive attributes (not model inputs, but about the same person) as stored:
    encrypted under the row's subject key when the row holds personal values. A subject erased
    already keeps none."""
    if not attributes:
        return {}
    try:
        text = seal_derived(record, row, orjson.dumps(attributes).decode(), SENSITIVE)
    except ServingError as exc:
        if exc.code != "inputs_erased":
            raise
        return {}
    return orjson.loads(text) if text.startswith('{"' + ENC + '"') else attributes


def open_attributes(record_id: Any, row: int, stored: Any) -> dict[str, Any]:
    """What seal_attributes() stored, decrypted ({} once the subject was erased)."""
    if not (isinstance(stored, dict) and ENC in stored):
        return stored or {}
    text = open_derived(record_id, row, orjson.dumps(stored).decode(), SENSITIVE)
    return {} if text is None else orjson.loads(text)


INPUTS_ERASED = (
    "The inputs of this prediction were erased (a data subject's erasure or retention): it can no longer be "
    "explained; its logged decision and proof remain."
)


def reveal_record(record: Any) -> tuple[Any, list[str]]:
    return reveal(record.public_id, record.inputs, record.business_keys)


# --- erasure, legal hold, retention -------------------------------------------------------
def holds(model_name: str) -> bool:
    return LegalHold.objects.filter(model_name=model_name, released_at__isnull=True).exists()


@transaction.atomic
def erase_subject(*, model_name: str, subject: Any, actor: Any) -> int:
    """Destroy every data key of the subject in the model's log (all months): their values read
    "[erased]" from now on. Refused with 409 while a legal hold is in force. The audit event
    holds a salted hash of the subject, never the value. Risk officers only: the API and the
    page ask this same rule."""
    if not has_role(actor, RISK_OFFICERS):
        raise ServingError("Only risk officers erase a data subject's personal data.", status=403, code="forbidden")
    if holds(model_name):
        raise ServingError(
            f"{model_name} is under a legal hold: no personal data of it is erased until a risk officer releases it.",
            status=409,
            code="legal_hold",
        )
    keys = SubjectKey.objects.select_for_update().filter(
        model_name=model_name, subject_hash__in=subject_hashes(model_name, subject), erased_at__isnull=True
    )
    months = sorted({k.month.isoformat() for k in keys})
    ids = list(keys.values_list("pk", flat=True))
    erased = keys.update(wrapped=None, erased_at=timezone.now(), erased_because="request")
    # the lookup index forgets the subject's business key too: a lookup finds nothing, while
    # the records, their seals and proofs stay (the key in a record is sealed ciphertext)
    unindexed, _ = PredictionKey.objects.filter(
        record__model_name=model_name, key__in=[str(subject), *business_key_lookups(subject)]
    ).delete()
    salt = secrets.token_hex(16)
    audit.record(
        audit.SUBJECT_ERASED,
        actor=actor,
        target=None,
        data={
            "model": model_name,
            "subject_salt": salt,
            "subject_sha256": hashlib.sha256(f"{salt}{subject}".encode()).hexdigest(),
            "keys_erased": erased,
            "index_rows_removed": unindexed,
            "months": months,
            # destroyed key ids are evidence: a key put back is named by verification
            "evidence": evidence(*SubjectKey.objects.filter(pk__in=ids).order_by("pk")),
        },
    )
    with _lock:
        _writing.clear()
    return erased


@transaction.atomic
def erase_expired(*, now: datetime | None = None, retention_days: int) -> dict[str, int]:
    """Retention: destroy the keys of months that ended more than `retention_days` ago, except
    for models under a legal hold. One audit event per run (when anything was erased)."""
    now = now or timezone.now()
    from datetime import timedelta

    cutoff = month_of(now - timedelta(days=retention_days))  # months before this one have ended long enough
    held = set(LegalHold.objects.filter(released_at__isnull=True).values_list("model_name", flat=True))
    due = (
        SubjectKey.objects.select_for_update()
        .filter(erased_at__isnull=True, month__lt=cutoff)
        .exclude(model_name__in=held)
    )
    counts: dict[str, int] = {}
    ids = list(due.values_list("pk", flat=True))
    for model_name in sorted(set(due.values_list("model_name", flat=True))):
        counts[model_name] = due.filter(model_name=model_name).update(
            wrapped=None, erased_at=now, erased_because="retention"
        )
    if counts:
        erased = SubjectKey.objects.filter(pk__in=ids).order_by("pk")
        audit.record(
            audit.RETENTION_ERASED,
            actor=None,
            target=None,
            data={
                "retention_days": retention_days,
                "before_month": cutoff.isoformat(),
                "keys_erased": counts,
                "evidence": evidence(*erased),
            },
        )
        with _lock:
            _writing.clear()
    return counts


@transaction.atomic
def place_hold(*, model_name: str, reason: str, actor: Any) -> LegalHold:
    text = (reason or "").strip()
    if not text:
        raise ServingError("A legal hold needs a reason.", status=400, code="invalid_hold")
    hold = LegalHold.objects.create(model_name=model_name, reason=text, placed_by=actor)
    audit.record(audit.LEGAL_HOLD_PLACED, actor=actor, target=hold, data={"model": model_name, "reason": text})
    return hold


@transaction.atomic
def release_hold(hold_id: int, *, actor: Any) -> LegalHold:
    hold = LegalHold.objects.select_for_update().get(pk=hold_id)
    if hold.released_at is None:
        hold.released_at = timezone.now()
        hold.released_by_username = getattr(actor, "username", "") or "system"
        hold.save(update_fields=["released_at", "released_by_username"])
        audit.record(audit.LEGAL_HOLD_RELEASED, actor=actor, target=hold, data={"model": hold.model_name})
    return hold


def rotate_kek() -> int:
    """Re-wrap every live data key under the current LOG_KEK (the log is not touched): the
    datasets' keys (lifecycle.dataset_store), then the subjects' keys, whose count it returns."""
    dataset_store.rotate_dataset_keys()
    current, _ = _keks()
    rotated = 0
    for key in SubjectKey.objects.filter(erased_at__isnull=True).exclude(kek_id=current).iterator():
        data_key = _unwrap(key.kek_id, bytes(key.wrapped or b""))
        key.kek_id, key.wrapped = _wrap(data_key)
        key.save(update_fields=["kek_id", "wrapped"])
        rotated += 1
    forget_keys()
    return rotated
