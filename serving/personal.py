"""Personal data in the prediction log (docs/design.md, "Personal data").

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

The data keys are made and read in serving.subject_keys; erasure, legal hold and retention are
serving.erasure.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
from collections.abc import Iterable
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.utils import timezone

from core import caches
from serving.errors import ServingError
from serving.subject_keys import (
    HASH_HEX,
    KEY_PREFIX,
    KeysUnavailable,
    NewKeys,
    month_of,
    read_keys,
    subject_hashes_of,
    write_keys,
)

ERASED = "[erased]"
ENC = "$enc"
BUSINESS_KEY = "business_key"
ROW = "$row"  # marks the value holding a row's sealed personal values
IN_ROW = "^"  # {"$enc": "^"}: a personal value sealed in its row's ciphertext


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
    month = month_of(timezone.now())
    # one HMAC per subject not met this month, none for the others (remembered with their keys)
    hashes = subject_hashes_of(model_name, subjects, subject_field == BUSINESS_KEY, month)
    if subject_field == BUSINESS_KEY:  # the key's lookup form is its subject hash, truncated
        lookups = [KEY_PREFIX + h[:HASH_HEX] for h in hashes]
    keys = write_keys(model_name, set(hashes), month, pending)
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
        values = {}  # (a loop, not a comprehension: no frame of its own per row on Python 3.11)
        for name in present:
            values[name] = row[name]
        if personal_key:
            values[BUSINESS_KEY] = subjects[i]
            stored_keys[i] = lookups[i]  # type: ignore[index]
        nonce = nonces[12 * i : 12 * i + 12]  # _seal(), inline: this loop runs once per logged row
        ciphertext = aead.encrypt(nonce, dumps(values), (place + str(i)).encode())
        copy = row.copy()  # (dict.copy copies the table whole; {**row} inserts key by key)
        copy[present[0]] = {ENC: f"{key_pk}:{b64(nonce + ciphertext, newline=False).decode()}", ROW: 1}
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
        return orjson.loads(_aead(data_key).decrypt(raw[:12], raw[12:], place.encode()))
    except InvalidTag:
        raise KeysUnavailable(f"The personal value at {place} does not decrypt: it was moved or changed.") from None


@functools.lru_cache(maxsize=64)
def _aead(data_key: bytes) -> AESGCM:
    """The cipher of a data key, made once for the many values an export opens under it (the key
    itself is read from the database every time: an erased one is never opened)."""
    return AESGCM(data_key)


caches.register("serving.personal.ciphers", _aead.cache_clear)


def key_ids(rows: Any, business_keys: list[str]) -> set[int]:
    """The ids of the data keys a stored record names: in its rows' sealed values and its business
    keys (what opening it would read; serving.erasure_preview counts a subject's rows with them)."""
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
        ids |= key_ids(rows, business_keys or [])
    return read_keys(ids) if ids else {}


def reveal(
    record_id: Any, rows: Any, business_keys: list[str] | None = None, keys: dict[int, bytes | None] | None = None
) -> tuple[Any, list[str]]:
    """The logged rows and business keys with personal values decrypted, or "[erased]" where
    their key was destroyed. Rows without encrypted values come back as they are. Reads both
    forms: a ciphertext per row (protect) and, in records written before it, one per value.
    `keys`: read_keys_of() over records that include this one (read just before), or None to
    read them now."""
    stored_keys = business_keys or []
    if keys is None:  # (given keys were read for ids found already: not walked again)
        ids = key_ids(rows, stored_keys)
        if not ids:
            return rows, list(stored_keys)
        keys = read_keys(ids)
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
    keys = read_keys({int(value[ENC].split(":", 1)[0])})
    return _open(value, keys, f"{record_id}.{row}.explanation")


def reveal_outputs(record_id: Any, outputs: Any) -> Any:
    """The logged outputs with their inline explanations (sealed under each row's subject key)
    decrypted for display, or ERASED once the subject was erased; other outputs as logged."""
    explanations = outputs.get("explanations") if isinstance(outputs, dict) else None
    sealed = [e for e in explanations or [] if isinstance(e, dict) and ENC in e]
    if not sealed:
        return outputs
    keys = read_keys({int(e[ENC].split(":", 1)[0]) for e in sealed})
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
    key = read_keys({key_id}).get(key_id)
    if key is None:
        raise ServingError(INPUTS_ERASED, status=410, code="inputs_erased")
    return orjson.dumps(_seal(key_id, AESGCM(key), text, f"{record.public_id}.{row}.{what}")).decode()


def open_derived(record_id: Any, row: int, text: str, what: str) -> str | None:
    """The text seal_derived() stored, decrypted; None when its subject's key was destroyed."""
    if not text.startswith('{"' + ENC + '"'):
        return text
    value = orjson.loads(text)
    opened = _open(value, read_keys({int(value[ENC].split(":", 1)[0])}), f"{record_id}.{row}.{what}")
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
