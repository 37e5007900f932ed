"""The data keys of the prediction log's personal values (serving.personal): one per
(model, subject, UTC month), made on first use, stored wrapped by LOG_KEK, remembered by each
process for SUBJECT_KEY_CACHE_SECONDS, and re-wrapped on a rotation. serving.personal seals and
opens values with them; serving.erasure destroys them."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core import caches, envelope
from core.envelope import keks as _keks
from core.envelope import wrap as _wrap
from lifecycle import dataset_store
from serving.errors import ServingError
from serving.log import keyed_digest, keyed_hexdigests
from serving.models import SubjectKey
from serving.writers import live_keys, writer

KEY_PREFIX = "h:"  # a stored personal business key: "h:<keyed hash>" (its value sealed in its row)


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
        _reserved.clear()


def forget_written_keys() -> None:
    """After an erasure: this process makes no new record with a key it remembers."""
    with _lock:
        _writing.clear()


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


class _Month:
    """What a process remembers for one (model, month): its subjects' keys (subject hash -> key id
    and AES-GCM, once committed) and the keyed hashes of the subjects it met (by subject field, by
    business key), so a known subject costs no HMAC, no unwrapping and no round trip. The keys
    are asked of the database again once `born` is SUBJECT_KEY_CACHE_SECONDS ago (_remembered_month);
    an erasure in this process forgets all of it at once (forget_written_keys)."""

    __slots__ = ("born", "keys", "hashes")

    def __init__(self, born: float) -> None:
        self.born = born
        self.keys: dict[str, tuple[int, AESGCM]] = {}
        self.hashes: tuple[dict[str, str], dict[str, str]] = ({}, {})


# (model, month) -> what is remembered of it. A request finds which of its subjects are
# remembered with one set difference instead of a lookup and a time comparison per row.
_writing: dict[tuple[str, date], _Month] = {}
_kek_checked: list[float] = []
caches.register("serving.subject_keys", forget_keys)
KEYS_REMEMBERED = 100_000  # per model and month, per process
_reading: dict[tuple[int, str, bytes], bytes] = {}


def subject_hashes_of(model_name: str, subjects: list[str], by_business_key: bool, month: date) -> list[str]:
    """The hash each subject's keys are under this month: subject_hash() or, for a subject named
    by its business key, the key's whole keyed hash (its lookup form is that hash, truncated).
    Remembered with the month's keys, and forgotten with them."""
    known = _remembered_month((model_name, month)).hashes[by_business_key]
    found = list(map(known.get, subjects))
    if None not in found:
        return found  # type: ignore[return-value]
    missing = sorted({s for s, h in zip(subjects, found, strict=True) if h is None})
    prefix = "business-key\x1f" if by_business_key else f"subject\x1f{model_name}\x1f"
    made = dict(zip(missing, keyed_hexdigests([(prefix + s).encode() for s in missing]), strict=True))
    with _lock:
        if len(known) > KEYS_REMEMBERED:  # a bound on memory: start again
            known.clear()
        known.update(made)
    return [h if h is not None else made[s] for s, h in zip(subjects, found, strict=True)]


def write_keys(
    model_name: str, hashes: set[str], month: date, pending: NewKeys | None = None
) -> dict[str, tuple[int, AESGCM]]:
    """The live data key of each subject for this month (ready to encrypt), made on first use. A
    process keeps them SUBJECT_KEY_CACHE_SECONDS: an erasure reaches every process's new answers
    within that time. With `pending` (PostgreSQL, a few new subjects), new keys are not written
    here: they go into `pending`, for the record's own INSERT to write (log.Entry.new_keys)."""
    cached = _remembered((model_name, month))
    missing = hashes.difference(cached)  # (looks up each of hashes: `- cached.keys()` walked the whole dict)
    # (the remembered keys are only ever added to, never changed: a new dict replaces them)
    found = cached if not missing else {h: cached[h] for h in hashes - missing}
    if missing and pending is not None and len(missing) <= NEW_KEYS_WITH_RECORD:
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
        for pk, h, wrapped, key_id_ in live_keys(model_name, made_elsewhere, month) if made_elsewhere else []:
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
            _reserved.extend(writer().reserve_subject_key_ids(max(64, n)))
        taken, _reserved[:n] = _reserved[:n], []
    return taken


class NewKeys:
    """New subjects' keys made for one record, written by its INSERT (serving.statements.
    new_subject_keys_with_ids(), one row of its parameters per key) and remembered once that
    commits (remember())."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.ready: dict[tuple[str, date], dict[str, tuple[int, AESGCM]]] = {}

    def add(self, model_name: str, h: str, month: date, pk: int, wrapped: bytes, key_id_: str, aead: AESGCM) -> None:
        self.rows.append((pk, model_name, h, month, wrapped, key_id_, timezone.now()))
        self.ready.setdefault((model_name, month), {})[h] = (pk, aead)

    def remember(self) -> None:
        """After the record and these keys were written: keep the keys for later records once
        the transaction commits."""
        _remember_on_commit(self.ready)


def _remember_on_commit(keys: dict[tuple[str, date], dict[str, tuple[int, AESGCM]]]) -> None:
    """Keep new keys, by (model, month) and subject hash, for later records once the current
    transaction commits (at once outside one), at most KEYS_REMEMBERED per model and month."""

    def remember() -> None:
        for place, entries in keys.items():
            month = _remembered_month(place)
            with _lock:
                if len(month.keys) > KEYS_REMEMBERED:  # a bound on memory: start again
                    month = _writing[place] = _Month(time.monotonic())
                month.keys.update(entries)

    transaction.on_commit(remember)


def _remembered(place: tuple[str, date]) -> dict[str, tuple[int, AESGCM]]:
    """The keys this process remembers for (model, month)."""
    return _remembered_month(place).keys


CHECKED_AT_ONCE = 5_000  # ids per query (SQLite takes at most 32,766 parameters)


def _remembered_month(place: tuple[str, date]) -> _Month:
    """What this process remembers for (model, month). Once it started remembering it
    SUBJECT_KEY_CACHE_SECONDS ago, its keys are asked of the database again (a query per 5,000, not
    one unwrapping per key): those erased meanwhile are forgotten (with the subjects met, then), the
    others kept for as long again. An erasure reaches every process's new answers within that time."""
    now = time.monotonic()
    with _lock:
        month = _writing.get(place)
        if month is not None and month.born > now - settings.SUBJECT_KEY_CACHE_SECONDS:
            return month
    fresh = _Month(now)
    if month is not None and month.keys:
        remembered = dict(month.keys)  # (a copy: another thread may be adding to it)
        ids = [pk for pk, _ in remembered.values()]
        live: set[int] = set()
        for start in range(0, len(ids), CHECKED_AT_ONCE):
            chunk = ids[start : start + CHECKED_AT_ONCE]
            live.update(SubjectKey.objects.filter(pk__in=chunk, erased_at__isnull=True).values_list("pk", flat=True))
        fresh.keys = {h: key for h, key in remembered.items() if key[0] in live}
        if len(fresh.keys) == len(remembered):
            fresh.hashes = month.hashes
    with _lock:
        _writing[place] = fresh
    return fresh


def _make_keys(model_name: str, hashes: set[str], month: date) -> dict[str, tuple[int, bytes]]:
    """New keys for the subjects that have none this month, in one statement; a subject whose key
    another process made first is left out (the unique live key per subject and month) and read
    back by the caller like any other."""
    new = {h: AESGCM.generate_key(bit_length=256) for h in sorted(hashes)}
    made = writer().make_subject_keys(model_name, {h: _wrap(k) for h, k in new.items()}, month, timezone.now())
    return {h: (pk, new[h]) for h, pk in made.items()}


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


def read_keys(ids: set[int]) -> dict[int, bytes | None]:
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
