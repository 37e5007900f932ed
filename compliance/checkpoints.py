"""Signed checkpoints (DESIGN.md, "Audit trail, seals and checkpoints"): the audit chain's head and
the latest prediction seal, signed with the configured Ed25519 key and appended to
CHECKPOINT_DIR/checkpoints.log, outside the database. Verifying them against the database finds
what the hash chain alone cannot: a cut-off tail, or a chain rewritten with recomputed hashes.
The note format and the cryptography live in core.checkpoints; this module reads the database."""

from __future__ import annotations

import base64
import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from core import audit
from core.checkpoints import (
    LOG_NAME,
    Checkpoint,
    CheckpointError,
    LoggedNote,
    Signer,
    append_note,
    open_checkpoint,
    parse_seed,
    read_log,
    sign_checkpoint,
)
from core.keyfiles import read_or_create
from core.models import AuditChainHead, AuditEvent
from serving.models import PredictionSeal

logger = logging.getLogger(__name__)
CHUNK = 2000


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


def write_checkpoint() -> WrittenCheckpoint:
    """Sign the current head and seal and append the note to CHECKPOINT_DIR/checkpoints.log."""
    signer = signing_key()
    checkpoint = current_checkpoint()
    note = sign_checkpoint(checkpoint, signer)
    path = append_note(Path(settings.CHECKPOINT_DIR), note)
    return WrittenCheckpoint(checkpoint, note, path)


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


def verify_checkpoints(directory: Path | str | None = None) -> CheckpointVerification:
    """Every checkpoint in the directory's log: its signature by the configured key, then the
    chain's event at its sequence number (and its seal) unchanged. Names the first that fails."""
    folder = Path(directory or settings.CHECKPOINT_DIR)
    if not (folder / LOG_NAME).is_file():
        return CheckpointVerification(False, 0, f"no checkpoint log: {folder / LOG_NAME} does not exist")
    try:
        public_key = signing_key(create=False).verifier.public_key
    except CheckpointError as exc:
        return CheckpointVerification(False, 0, exc.message)
    opened: list[tuple[LoggedNote, Checkpoint]] = []
    for logged in read_log(folder):
        try:
            opened.append((logged, open_checkpoint(logged.note, public_key)))
        except CheckpointError as exc:
            return CheckpointVerification(False, len(opened), f"{_name(logged)}: {exc.message}")
    problem = _first_not_contained(opened)
    if problem:
        return CheckpointVerification(False, len(opened), problem)
    latest, where = (opened[-1][1], opened[-1][0].where) if opened else (None, "")
    message = f"{len(opened)} signed checkpoints verified, each head still in the chain"
    return CheckpointVerification(True, len(opened), message, latest, where)


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
        checkpoint = open_checkpoint(last.note, signing_key(create=False).verifier.public_key)
    except CheckpointError as exc:
        return {**status, "ok": False, "message": f"{_name(last)}: {exc.message}"}
    problem = _first_not_contained([(last, checkpoint)])
    message = problem or "Signature valid; the audit trail still contains this head and seal."
    return {**status, "checkpoint": checkpoint, "ok": problem is None, "message": message}
