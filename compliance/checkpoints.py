"""Signed checkpoints (docs/design.md, "Audit trail, seals and checkpoints"): the audit chain's head and
the latest prediction seal, signed with the configured Ed25519 key and appended to
CHECKPOINT_DIR/checkpoints.log, outside the database. Verifying them against the database finds
what the hash chain alone cannot: a cut-off tail, or a chain rewritten with recomputed hashes.

A witness, with its own key and its own directory, cosigns each checkpoint once it is written
(C2SP tlog-cosignature) and keeps a copy: a checkpoint log that was emptied, or lost its newest
notes, no longer holds what the witness saw, and verification says so. Verifying needs only the
two public keys. Verification also fails when the newest checkpoint is older than twice the
interval at which beat writes them (CHECKPOINT_INTERVAL_SECONDS).
The note format and the cryptography live in core.checkpoints; this module reads the database."""

from __future__ import annotations

import base64
import fcntl
import logging
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from core import audit
from core.checkpoints import (
    ALG_COSIGNATURE_V1,
    LOG_NAME,
    Checkpoint,
    CheckpointError,
    LoggedNote,
    Signer,
    Verifier,
    append_note,
    cosign_note,
    open_checkpoint,
    open_cosignature,
    parse_seed,
    read_log,
    sign_checkpoint,
)
from core.keyfiles import read_or_create
from core.models import AuditChainHead, AuditEvent
from serving.models import PredictionSeal

logger = logging.getLogger(__name__)
CHUNK = 2000
WITNESS_LOG_NAME = "cosigned.log"


def signing_key(*, create: bool = True) -> Signer:
    """CHECKPOINT_SIGNING_KEY; without it, in development only, the key kept in
    CHECKPOINT_KEY_FILE, generated on first use when `create`."""
    origin = settings.CHECKPOINT_ORIGIN
    if settings.CHECKPOINT_SIGNING_KEY:
        return Signer(origin, parse_seed(settings.CHECKPOINT_SIGNING_KEY))
    if not settings.DEBUG:
        raise CheckpointError("CHECKPOINT_SIGNING_KEY must be set when DEBUG=False.")
    path = Path(settings.CHECKPOINT_KEY_FILE)
    if not path.exists():
        if not create:
            raise CheckpointError(f"No checkpoint key: CHECKPOINT_SIGNING_KEY is unset and {path} does not exist.")
        read_or_create(
            path, lambda: base64.b64encode(Signer.generate(origin).seed).decode(), what="CHECKPOINT_SIGNING_KEY"
        )
    return Signer(origin, parse_seed(path.read_text()))


def public_key() -> Verifier:
    """The log's verifier key: CHECKPOINT_PUBLIC_KEY, or else the one of the signing key (if this
    process has it). Verifying needs nothing more."""
    if settings.CHECKPOINT_PUBLIC_KEY:
        return Verifier.from_vkey(settings.CHECKPOINT_PUBLIC_KEY)
    try:
        return signing_key(create=False).verifier
    except CheckpointError as exc:
        raise CheckpointError(
            f"No checkpoint public key: set CHECKPOINT_PUBLIC_KEY (`manage.py checkpoint --public-key` prints it). "
            f"({exc.message})"
        ) from None


def witness_key(*, create: bool = True) -> Signer:
    """The witness's cosigning key: CHECKPOINT_WITNESS_KEY; without it, in development only, the
    key kept in CHECKPOINT_WITNESS_KEY_FILE, generated on first use when `create`."""
    name = settings.CHECKPOINT_WITNESS_NAME
    what = "CHECKPOINT_WITNESS_KEY"
    if settings.CHECKPOINT_WITNESS_KEY:
        return Signer(name, parse_seed(settings.CHECKPOINT_WITNESS_KEY, what), ALG_COSIGNATURE_V1)
    if not settings.DEBUG:
        raise CheckpointError("CHECKPOINT_WITNESS_KEY must be set when DEBUG=False.")
    path = Path(settings.CHECKPOINT_WITNESS_KEY_FILE)
    if not path.exists():
        if not create:
            raise CheckpointError(f"No witness key: CHECKPOINT_WITNESS_KEY is unset and {path} does not exist.")
        read_or_create(path, lambda: base64.b64encode(Signer.generate(name).seed).decode(), what=what)
    return Signer(name, parse_seed(path.read_text(), what), ALG_COSIGNATURE_V1)


def witness_public_key() -> Verifier:
    """CHECKPOINT_WITNESS_PUBLIC_KEY, or else the one of the witness's key (if this process has it)."""
    if settings.CHECKPOINT_WITNESS_PUBLIC_KEY:
        return Verifier.from_vkey(settings.CHECKPOINT_WITNESS_PUBLIC_KEY, ALG_COSIGNATURE_V1)
    try:
        return witness_key(create=False).verifier
    except CheckpointError as exc:
        raise CheckpointError(
            "No witness public key: set CHECKPOINT_WITNESS_PUBLIC_KEY (`manage.py checkpoint --witness-public-key` "
            f"prints it). ({exc.message})"
        ) from None


def witness_dir(checkpoint_dir: Path | str | None = None) -> Path:
    """CHECKPOINT_WITNESS_DIR, or else "<checkpoint directory>-witness" beside it; never the
    checkpoint directory itself."""
    folder = Path(checkpoint_dir or settings.CHECKPOINT_DIR)
    witness = Path(settings.CHECKPOINT_WITNESS_DIR) if settings.CHECKPOINT_WITNESS_DIR else None
    witness = witness or folder.with_name(f"{folder.name}-witness")
    if witness.resolve() == folder.resolve():
        raise CheckpointError("CHECKPOINT_WITNESS_DIR must not be the checkpoint directory: it is the second place.")
    return witness


@contextmanager
def _locked(folder: Path, name: str) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / name).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cosign(note: str, *, folder: Path | None = None) -> str:
    """The witness: check the log's signature and that the checkpoint does not go back on the last
    one it cosigned (a lower chain position, or the same one with another hash), then cosign it and
    keep it (appended to its cosigned.log, fsynced). Returns the cosigned note."""
    folder = folder or witness_dir()
    checkpoint = open_checkpoint(note, public_key().public_key)
    key = witness_key()
    with _locked(folder, ".lock"):
        last = deque(read_log(folder, WITNESS_LOG_NAME), maxlen=1)
        if last:
            seen = Checkpoint.parse(open_cosignature(last[0].note, key.verifier)[0])
            if checkpoint.seq < seen.seq or (checkpoint.seq == seen.seq and checkpoint.head_hash != seen.head_hash):
                raise CheckpointError(
                    f"The witness refuses the checkpoint of audit-chain #{checkpoint.seq} {checkpoint.head_hash}: it "
                    f"cosigned #{seen.seq} {seen.head_hash} on {seen.time:%Y-%m-%d %H:%M:%S} UTC, and a chain only "
                    "grows."
                )
        cosigned = cosign_note(note, key, int(timezone.now().timestamp()))
        append_note(folder, cosigned, WITNESS_LOG_NAME)
    return cosigned


def current_checkpoint() -> Checkpoint:
    """The chain head now, and the newest seal whose audit event that head already covers (a
    seal committed after the head was read waits for the next checkpoint)."""
    head = AuditChainHead.objects.filter(pk=1).first()
    seq, head_hash = (head.seq, head.hash) if head else (0, audit.GENESIS_HASH)
    seal = PredictionSeal.objects.filter(audit_seq__lte=seq).order_by("-audit_seq").first()
    return Checkpoint(
        origin=settings.CHECKPOINT_ORIGIN,
        seq=seq,
        head_hash=head_hash,
        seal_id=seal.pk if seal else None,
        seal_root=seal.root if seal else None,
        time=timezone.now(),
    )


@dataclass(frozen=True)
class WrittenCheckpoint:
    checkpoint: Checkpoint
    note: str
    path: Path
    cosigned: str = ""


def write_checkpoint() -> WrittenCheckpoint:
    """Sign the current head and seal, append the note to CHECKPOINT_DIR/checkpoints.log, and have
    the witness cosign it. One writer at a time (a lock file beside the log): the head read under
    the lock only moves forward, and the witness sees the notes in the log's order."""
    signer = signing_key()
    folder = Path(settings.CHECKPOINT_DIR)
    witness = witness_dir(folder)
    with _locked(folder, ".write.lock"):
        checkpoint = current_checkpoint()
        note = sign_checkpoint(checkpoint, signer)
        path = append_note(folder, note)
        cosigned = cosign(note, folder=witness)
    return WrittenCheckpoint(checkpoint, note, path, cosigned)


@dataclass(frozen=True)
class CheckpointVerification:
    ok: bool
    checked: int
    message: str
    latest: Checkpoint | None = None
    latest_where: str = ""


def _name(logged: LoggedNote, checkpoint: Checkpoint | None = None) -> str:
    if checkpoint is None:
        return f"checkpoint at {logged.where}"
    return f"checkpoint at {logged.where} (audit-chain #{checkpoint.seq}, {checkpoint.time:%Y-%m-%d %H:%M:%S} UTC)"


def _first_not_contained(opened: list[tuple[LoggedNote, Checkpoint]]) -> str | None:
    """What the database says against the first checkpoint it no longer contains, or None."""
    for start in range(0, len(opened), CHUNK):
        chunk = opened[start : start + CHUNK]
        hashes = dict(AuditEvent.objects.filter(seq__in={c.seq for _, c in chunk}).values_list("seq", "hash"))
        seal_ids = {c.seal_id for _, c in chunk if c.seal_id is not None}
        roots = dict(PredictionSeal.objects.filter(pk__in=seal_ids).values_list("pk", "root"))
        for logged, c in chunk:
            name = _name(logged, c)
            if c.seq and c.seq not in hashes:
                last = AuditEvent.objects.aggregate(last=Max("seq"))["last"] or 0
                return f"{name}: event #{c.seq} is no longer in the audit trail (it now ends at #{last})"
            if c.seq and hashes[c.seq] != c.head_hash:
                signed = f"the checkpoint signed {c.head_hash}"
                return f"{name}: event #{c.seq} now has hash {hashes[c.seq]}, {signed}: the chain was rewritten"
            if c.seal_id is not None and roots.get(c.seal_id) != c.seal_root:
                now = f"root {roots[c.seal_id]}" if c.seal_id in roots else "no such seal"
                return f"{name}: prediction seal #{c.seal_id} now has {now}, the checkpoint signed {c.seal_root}"
    return None


def _cut(opened: list[tuple[LoggedNote, Checkpoint]], witnessed: list[tuple[LoggedNote, Checkpoint]]) -> str | None:
    """Each note the witness cosigned, in order, must still be in the log (the log may hold notes
    the witness never saw: those written before it existed). Names the first one missing."""
    position = 0
    for logged, seen in witnessed:
        text = seen.text()
        while position < len(opened) and opened[position][1].text() != text:
            position += 1
        if position == len(opened):
            holds = f"{len(opened)} checkpoint{'s' if len(opened) != 1 else ''}"
            return (
                f"the witness cosigned the checkpoint of audit-chain #{seen.seq} at {seen.time:%Y-%m-%d %H:%M:%S} "
                f"UTC ({logged.where}), and {LOG_NAME} no longer holds it: the log was cut, emptied or edited "
                f"(it holds {holds}, the witness {len(witnessed)})"
            )
        position += 1
    return None


def verify_checkpoints(
    directory: Path | str | None = None, witness: Path | str | None = None
) -> CheckpointVerification:
    """Every checkpoint in the directory's log: its signature by the log's public key; every note
    the witness cosigned (its cosignature by the witness's public key) still in the log, in order;
    the newest no older than twice CHECKPOINT_INTERVAL_SECONDS; then the chain's event at each
    sequence number (and its seal) unchanged. Names the first that fails."""
    folder = Path(directory or settings.CHECKPOINT_DIR)
    if not (folder / LOG_NAME).is_file():
        return CheckpointVerification(False, 0, f"no checkpoint log: {folder / LOG_NAME} does not exist")
    try:
        log_key = public_key()
        witness_verifier = witness_public_key()
        witness_folder = Path(witness) if witness else witness_dir(folder)
    except CheckpointError as exc:
        return CheckpointVerification(False, 0, exc.message)
    opened: list[tuple[LoggedNote, Checkpoint]] = []
    for logged in read_log(folder):
        try:
            opened.append((logged, open_checkpoint(logged.note, log_key.public_key)))
        except CheckpointError as exc:
            return CheckpointVerification(False, len(opened), f"{_name(logged)}: {exc.message}")
    witnessed: list[tuple[LoggedNote, Checkpoint]] = []
    for logged in read_log(witness_folder, WITNESS_LOG_NAME):
        try:
            text, _ = open_cosignature(logged.note, witness_verifier)
            witnessed.append((logged, open_checkpoint(logged.note, log_key.public_key)))
        except CheckpointError as exc:
            return CheckpointVerification(False, len(opened), f"witness's {_name(logged)}: {exc.message}")
    problem = _cut(opened, witnessed)
    if problem:
        return CheckpointVerification(False, len(opened), problem)
    if not opened:
        empty = f"{folder / LOG_NAME} holds no checkpoint (and the witness has cosigned none)"
        return CheckpointVerification(False, 0, empty)
    latest, where = opened[-1][1], str(opened[-1][0].where)
    if not witnessed or witnessed[-1][1].text() != latest.text():
        seen = witnessed[-1][1] if witnessed else None
        newest = (
            f"its newest is audit-chain #{seen.seq} at {seen.time:%Y-%m-%d %H:%M:%S} UTC" if seen else "it has none"
        )
        return CheckpointVerification(
            False,
            len(opened),
            f"the newest checkpoint ({_name(opened[-1][0], latest)}) was not cosigned by the witness in "
            f"{witness_folder} ({newest}): the witness is down, or its copies were removed",
        )
    interval = settings.CHECKPOINT_INTERVAL_SECONDS
    age = timezone.now() - latest.time
    if age > timedelta(seconds=2 * interval):
        return CheckpointVerification(
            False,
            len(opened),
            f"the newest checkpoint ({_name(opened[-1][0], latest)}) is {_duration(age)} old, more than twice the "
            f"checkpoint interval of {interval} s: checkpoints stopped, or the newest were removed from both places",
        )
    problem = _first_not_contained(opened)
    if problem:
        return CheckpointVerification(False, len(opened), problem)
    unwitnessed = len(opened) - len(witnessed)
    message = (
        f"{len(opened)} signed checkpoints verified, each head still in the chain; the witness cosigned "
        f"{len(witnessed)}{f' ({unwitnessed} written before it)' if unwitnessed else ''}, all still in the log; the "
        f"newest is {_duration(age)} old"
    )
    return CheckpointVerification(True, len(opened), message, latest, where)


def _duration(age: timedelta) -> str:
    seconds = max(int(age.total_seconds()), 0)
    if seconds < 600:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h" if seconds < 172800 else f"{seconds // 86400} days"


def latest_checkpoint_status() -> dict[str, Any]:
    """The newest checkpoint in CHECKPOINT_DIR, for the auditors' "Verify now": its values, its
    signature, and whether the chain still contains its head."""
    folder = Path(settings.CHECKPOINT_DIR)
    tail = deque(read_log(folder), maxlen=1)
    if not tail:
        return {"exists": False, "ok": None, "message": f"No checkpoint has been written to {folder / LOG_NAME} yet."}
    last = tail[0]
    status: dict[str, Any] = {"exists": True, "where": last.where, "checkpoint": None}
    try:
        checkpoint = open_checkpoint(last.note, public_key().public_key)
    except CheckpointError as exc:
        return {**status, "ok": False, "message": f"{_name(last)}: {exc.message}"}
    problem = _first_not_contained([(last, checkpoint)])
    message = problem or "Signature valid; the audit trail still contains this head and seal."
    return {**status, "checkpoint": checkpoint, "ok": problem is None, "message": message}
