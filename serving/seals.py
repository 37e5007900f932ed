"""Sealing the prediction log: unsealed records, in id order, become the leaves of an RFC 6962
Merkle tree whose root is written to the audit trail. Verification walks the chained seal events
(not the seal table, which a DBA could edit) and recomputes every leaf from the record's content,
so an edited, deleted or forged record no longer matches; each record's MAC covers it before it
is sealed. A seal's tree is stored with it (SealTree) so that an inclusion proof reads its path,
not every leaf; verification never trusts the stored tree, it only checks it was not changed."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet, Value
from django.db.models.functions import Substr

from core import audit
from core.models import AuditEvent
from serving import merkle, partitions, seal_processes
from serving.fetch import stream
from serving.log import LEAF_FIELDS, leaf_of, mac_matches, record_leaf
from serving.models import PredictionLog, PredictionSeal, SealTree

_RUN = struct.Struct(">QQ")  # (first record id, count) of consecutive ids in a seal


def record_runs(ids: list[int]) -> bytes:
    """A seal's record ids (ascending) as runs of consecutive ids: one run when nothing else was
    written in between, a few more when concurrent or failed transactions left gaps."""
    runs: list[list[int]] = []
    for pk in ids:
        if runs and pk == runs[-1][0] + runs[-1][1]:
            runs[-1][1] += 1
        else:
            runs.append([pk, 1])
    return b"".join(_RUN.pack(first, count) for first, count in runs)


def leaf_index(runs: bytes, pk: int) -> int | None:
    """The leaf index of record `pk` in a seal whose ids are `runs`; None if it is not there."""
    index = 0
    for first, count in _RUN.iter_unpack(runs):
        if first <= pk < first + count:
            return index + pk - first
        index += count
    return None


def tree_digest(levels: bytes, runs: bytes) -> str:
    """The SHA-256 the seal's audit event records of its stored tree."""
    return hashlib.sha256(levels + runs).hexdigest()


@transaction.atomic
def seal_predictions(*, batch_size: int | None = None) -> PredictionSeal | None:
    """Seal up to batch_size unsealed records (oldest first); None when there is nothing to seal."""
    limit = batch_size or settings.SEAL_BATCH_SIZE
    width = len(LEAF_FIELDS)
    rows = list(
        PredictionLog.objects.select_for_update(skip_locked=True)
        .filter(seal__isnull=True)
        .order_by("pk")
        .values_list(*LEAF_FIELDS, "pk", "leaf_hash")[:limit]
    )
    if not rows:
        return None
    leaves = [leaf_of(row[:width]) for row in rows]
    tampered = [str(row[0]) for row, leaf in zip(rows, leaves, strict=True) if leaf.hex() != row[width + 1]]
    levels = merkle.tree_levels(leaves)
    root = levels[-1][0].hex()
    ids = [row[width] for row in rows]
    seal = PredictionSeal.objects.create(root=root, tree_size=len(ids), first_record=ids[0], last_record=ids[-1])
    for start in range(0, len(ids), 5000):
        PredictionLog.objects.filter(pk__in=ids[start : start + 5000]).update(seal=seal)
    packed, runs = merkle.pack_levels(levels), record_runs(ids)
    SealTree.objects.create(seal=seal, levels=packed, record_runs=runs)
    event = audit.record(
        audit.PREDICTIONS_SEALED,
        actor=None,
        target=seal,
        data={
            "root": root,
            "tree_size": seal.tree_size,
            "first_record": seal.first_record,
            "last_record": seal.last_record,
            "changed_before_sealing": tampered,
            "tree_sha256": tree_digest(packed, runs),
            # the records' time span: verification reads only the log's partitions it covers
            "created_from": min(row[1] for row in rows).isoformat(),
            "created_until": max(row[1] for row in rows).isoformat(),
        },
    )
    seal.audit_seq = event.seq
    seal.save(update_fields=["audit_seq"])
    return seal


@dataclass(frozen=True)
class SealingRun:
    records: int
    seals: int


def seal_all(*, batch_size: int | None = None) -> SealingRun:
    """Seal every unsealed record now, batch_size at a time (one seal, and one transaction, per
    batch): what beat does every SEAL_INTERVAL_SECONDS and `manage.py seal_predictions` does on
    demand. Records another sealer holds locked are left to it."""
    records = count = 0
    while (seal := seal_predictions(batch_size=batch_size)) is not None:
        records += seal.tree_size
        count += 1
    return SealingRun(records=records, seals=count)


@dataclass(frozen=True)
class SealedRecord:
    pk: int
    public_id: str
    leaf_hash: str  # as stored when the record was written


def seal_leaves(seal: PredictionSeal | int) -> tuple[list[SealedRecord], list[bytes]]:
    """A seal's records in leaf order, and each leaf recomputed from the row's current content
    (values, not model instances: a seal may cover 100,000 records)."""
    read = _read(seal if isinstance(seal, int) else seal.pk, None)
    records = [
        SealedRecord(pk=pk, public_id=str(public_id), leaf_hash=stored)
        for pk, public_id, stored in zip(read.pks, read.public_ids, read.stored, strict=True)
    ]
    return records, read.leaves


@dataclass
class _Read:
    """A seal's records as verification reads them: ids, public ids and stored leaf hashes (no
    object per record), each leaf recomputed, and the first record whose MAC fails."""

    pks: list[int]
    public_ids: list[object]
    stored: list[str]
    leaves: list[bytes]
    forged: tuple[int, str] | None


def _read(seal_id: int, span: tuple[str, str] | None) -> _Read:
    """A seal's records in id order, each leaf recomputed once and its MAC checked against it;
    with the records' time span (its audit event's), reading only the log's partitions of that
    span."""
    covered = PredictionLog.objects.filter(seal_id=seal_id)
    if span is not None:
        covered = covered.filter(created_at__gte=span[0], created_at__lte=span[1])
    width = len(LEAF_FIELDS)
    rows = covered.order_by("pk").values_list(*LEAF_FIELDS, "pk", "leaf_hash", "mac")
    read = _Read([], [], [], [], None)
    pks, public_ids, stored, leaves = read.pks, read.public_ids, read.stored, read.leaves
    for row in stream(rows):
        leaf = leaf_of(row[:width])
        pks.append(row[width])
        public_ids.append(row[0])
        stored.append(row[width + 1])
        leaves.append(leaf)
        mac = row[width + 2]
        # a record without a MAC (written before MACs existed) is proven by its seal alone
        if mac and read.forged is None and not mac_matches(leaf, mac):
            read.forged = (row[width], _FORGED.format(row[0]))
    return read


_FORGED = "record {} does not match its MAC: it was changed or forged in the database"


@dataclass(frozen=True)
class SealVerification:
    ok: bool
    seals_checked: int
    message: str


def verify_seals(seals: QuerySet[PredictionSeal] | None = None) -> SealVerification:
    """Walk the chained seal events (all, or those of the given seals): each event's root must be
    the root recomputed from the records it covers, and as many records must be left; a record
    changed before it was sealed, or a seal row without its event, fails. Then every record's MAC
    (LOG_MAC_KEY) is checked, sealed or not. Names the first seal or record that fails.

    Each record is read and its leaf recomputed once: its MAC is checked against that leaf as its
    seal is verified; the records no seal read (unsealed ones, and any claiming a seal outside the
    span it recorded) are read for their MACs afterwards."""
    events = AuditEvent.objects.filter(action=audit.PREDICTIONS_SEALED, target_type=PredictionSeal._meta.label_lower)
    # the given seals' ids, read once (a version's seals are a subquery over its records)
    ids = None if seals is None else list(seals.values_list("pk", flat=True))
    if ids is not None:
        events = events.filter(target_id__in=[str(pk) for pk in ids])
    count = read_records = 0
    chained: set[int] = set()
    spans: dict[int, tuple[str, str]] = {}
    forged: list[tuple[int, str]] = []
    retired = partitions.retired()
    listed = [(event, event.data if isinstance(event.data, dict) else {}) for event in events.order_by("seq")]
    # the seals read in processes beforehand (a large verification on PostgreSQL); {}: each as it comes
    judged = seal_processes.judge_all(
        _judge,
        [
            _job(int(event.target_id), data)
            for event, data in listed
            if "tree_size" in data and "root" in data and not data.get("changed_before_sealing")
            and int(event.target_id) not in retired.by_seal
        ],
    )  # fmt: skip
    for event, data in listed:
        count += 1
        seal_id = int(event.target_id)
        chained.add(seal_id)
        if "tree_size" not in data or "root" not in data:
            return SealVerification(False, count, f"seal #{seal_id}: its audit event #{event.seq} records no root")
        if data.get("changed_before_sealing"):
            return SealVerification(
                False,
                count,
                f"seal #{seal_id} (audit event #{event.seq}): record {data['changed_before_sealing'][0]} was changed "
                "before it was sealed",
            )
        span = _span(data)
        if span is not None:
            spans[seal_id] = span
        if seal_id in retired.by_seal:
            read = _read(seal_id, span)
            read_records += len(read.pks)
            if read.forged:
                forged.append(read.forged)
            problem = _retired_seal_problem(seal_id, event.seq, data, read, retired)
            if problem:
                return SealVerification(False, count, problem)
            continue
        verdict = judged.get(seal_id) or _judge(_job(seal_id, data))
        read_records += verdict.records
        if verdict.forged:
            forged.append(verdict.forged)
        if verdict.records != data["tree_size"]:
            return SealVerification(
                False,
                count,
                f"seal #{seal_id} (audit event #{event.seq}) covered {data['tree_size']} records but "
                f"{verdict.records} are left",
            )
        if verdict.root != data["root"]:
            which = f" (record {verdict.changed} changed)" if verdict.changed else ""
            return SealVerification(
                False,
                count,
                f"seal #{seal_id}: the records no longer match the root its audit event #{event.seq} recorded{which}",
            )
        if "tree_sha256" in data:
            problem = _stored_tree_problem(seal_id, event.seq, data["tree_sha256"])
            if problem:
                return SealVerification(False, count, problem)
    table = PredictionSeal.objects.all() if ids is None else PredictionSeal.objects.filter(pk__in=ids)
    unchained = table.exclude(pk__in=chained).order_by("pk").values_list("pk", flat=True).first()
    if unchained is not None:
        return SealVerification(False, count, f"seal #{unchained} has no audit event: it was not made by sealing")
    unread = _unread_forged(ids, chained, read_records, spans)
    if unread:
        forged.append(unread)
    if forged:
        return SealVerification(False, count, min(forged)[1])
    gone = sum(retired.by_seal.values())
    # retired records are named as retired (by their audit events), never as missing
    also = f"; {gone} records retired by retention proven by their seals' stored trees" if gone else ""
    return SealVerification(True, count, f"{count} prediction seals verified, every record's MAC checked{also}")


def _job(seal_id: int, data: dict[str, object]) -> seal_processes.Job:
    size = data["tree_size"]
    return seal_processes.Job(seal_id, _span(data), str(data["root"]), size if isinstance(size, int) else 0)


def _judge(job: seal_processes.Job) -> seal_processes.Judged:
    """One seal judged: its records read once (within its span), each leaf recomputed and its MAC
    checked, and the root recomputed; when that root is not the recorded one, the first record
    whose leaf no longer matches the hash stored when it was written."""
    read = _read(job.seal_id, job.span)
    root = merkle.root(read.leaves).hex()
    changed = None
    if root != job.root:
        pairs = zip(read.public_ids, read.leaves, read.stored, strict=True)
        changed = next((str(p) for p, leaf, h in pairs if leaf.hex() != h), None)
    return seal_processes.Judged(len(read.pks), root, read.forged, changed)


def _unread_forged(
    ids: list[int] | None, chained: set[int], read_records: int, spans: dict[int, tuple[str, str]]
) -> tuple[int, str] | None:
    """The first record the seals' pass did not read whose MAC fails: the unsealed ones (for the
    whole log); and when more records name a verified seal than were read in its span, all of
    them again (as first_forged_record), and failing that the first record that names a seal
    outside the time span its seal recorded: whatever its MAC, a seal's records are the ones its
    root was computed over. Records sealed while this ran (into seals newer than the newest
    verified) are left to the next run."""
    if ids is None:
        sealed = PredictionLog.objects.filter(seal_id__isnull=False, seal_id__lte=max(chained, default=0))
        scope = PredictionLog.objects.all()
    else:
        sealed = PredictionLog.objects.filter(seal_id__in=chained)
        scope = PredictionLog.objects.filter(seal_id__in=ids)
    if sealed.count() != read_records:
        return _first_forged(scope) or _outside_its_seal(spans)
    return _first_forged(PredictionLog.objects.filter(seal__isnull=True)) if ids is None else None


def _outside_its_seal(spans: dict[int, tuple[str, str]]) -> tuple[int, str] | None:
    """The first record that names a seal but lies outside the time span that seal's event
    recorded (so its root never covered it)."""
    for seal_id, (first, last) in sorted(spans.items()):
        outside = (
            PredictionLog.objects.filter(seal_id=seal_id)
            .exclude(created_at__gte=first, created_at__lte=last)
            .order_by("pk")
            .values_list("pk", "public_id")
            .first()
        )
        if outside is not None:
            return outside[0], (
                f"record {outside[1]} names seal #{seal_id} but lies outside the time span its audit event "
                "recorded: that seal's root never covered it"
            )
    return None


def _span(data: dict[str, object]) -> tuple[str, str] | None:
    """The time span a seal's event recorded of its records (None for seals made before). A
    record moved out of it is read as missing, so the root no longer matches: nothing is hidden."""
    first, last = data.get("created_from"), data.get("created_until")
    return (first, last) if isinstance(first, str) and isinstance(last, str) else None


def _retired_seal_problem(
    seal_id: int,
    seq: int,
    data: dict[str, object],
    read: _Read,
    retired: partitions.Retired,
) -> str:
    """A seal some of whose records retention retired (serving.partitions): the retired leaves
    are read from the stored tree, which its audit event's SHA-256 proves unchanged; the leaves
    left are recomputed from their records; together they must give the root the event recorded.
    A record missing that no retirement covers is named."""
    name = f"seal #{seal_id} (audit event #{seq})"
    size, gone = int(str(data["tree_size"])), retired.by_seal[seal_id]
    if len(read.pks) + gone != size:
        return f"{name} covered {size} records, but {len(read.pks)} are left and retention retired {gone}"
    stored = SealTree.objects.filter(pk=seal_id).values_list("levels", "record_runs").first()
    if stored is None or tree_digest(bytes(stored[0]), bytes(stored[1])) != data.get("tree_sha256"):
        return f"{name}: retention retired {gone} of its records, and the tree proving them is changed or missing"
    levels, runs = bytes(stored[0]), bytes(stored[1])
    ids = [first + i for first, n in _RUN.iter_unpack(runs) for i in range(n)]
    present = dict(zip(read.pks, zip(read.public_ids, read.leaves, strict=True), strict=True))
    full, changed = [], []
    for index, pk in enumerate(ids[:size]):
        kept = levels[index * merkle.HASH_SIZE : (index + 1) * merkle.HASH_SIZE]
        if pk in present:
            public_id, leaf = present.pop(pk)
            if leaf != kept:
                changed.append(str(public_id))
        elif not retired.holds(pk):
            return f"{name}: record #{pk} is missing, and no retirement by retention covers it"
        else:
            leaf = kept
        full.append(leaf)
    if len(ids) != size or present:
        return f"{name}: its stored tree does not list the records the seal covers"
    if changed or merkle.root(full).hex() != data["root"]:
        which = f" (record {changed[0]} changed)" if changed else ""
        return f"{name}: the records no longer match the root its audit event recorded{which}"
    return ""


def _stored_tree_problem(seal_id: int, seq: int, recorded: str) -> str:
    """A stored tree cannot hide a changed record (the root above was recomputed from the
    records, and a proof's path is checked against the root), but one that was edited or
    deleted is still a change to the database behind the application's back."""
    stored = SealTree.objects.filter(pk=seal_id).values_list("levels", "record_runs").first()
    if stored is None:
        return f"seal #{seal_id}: its stored proof tree, recorded in audit event #{seq}, is missing"
    if tree_digest(bytes(stored[0]), bytes(stored[1])) != recorded:
        return f"seal #{seal_id}: its stored proof tree differs from what audit event #{seq} recorded"
    return ""


def first_forged_record(seals: QuerySet[PredictionSeal] | None = None) -> str:
    """The first record whose MAC does not match its content ("" when all do). A record without a
    MAC (written before MACs existed) must be sealed: its seal proves it."""
    found = _first_forged(
        PredictionLog.objects.all() if seals is None else PredictionLog.objects.filter(seal__in=seals)
    )
    return found[1] if found else ""


def _first_forged(records: QuerySet[PredictionLog]) -> tuple[int, str] | None:
    width = len(LEAF_FIELDS)
    rows = records.order_by("pk").values_list(*LEAF_FIELDS, "mac", "seal_id", "pk")
    for row in stream(rows):
        mac, seal_id = row[width], row[width + 1]
        if not mac:
            if seal_id is None:
                return row[width + 2], f"record {row[0]} has no MAC and no seal"
            continue
        if not mac_matches(leaf_of(row[:width]), mac):
            return row[width + 2], _FORGED.format(row[0])
    return None


def stored_path(seal: PredictionSeal, pk: int) -> tuple[int, list[bytes]] | None:
    """Record `pk`'s leaf index and audit path read from the seal's stored tree: two queries and
    at most ceil(log2(n)) hashes. None for a seal written before trees were stored."""
    runs = SealTree.objects.filter(pk=seal.pk).values_list("record_runs", flat=True).first()
    if runs is None:
        return None
    index = leaf_index(bytes(runs), pk)
    if index is None or index >= seal.tree_size:
        return None
    offsets = merkle.path_offsets(index, seal.tree_size)
    if not offsets:
        return index, []
    parts = {f"p{i}": Substr("levels", Value(offset + 1), Value(merkle.HASH_SIZE)) for i, offset in enumerate(offsets)}
    hashes = SealTree.objects.filter(pk=seal.pk).annotate(**parts).values_list(*parts).first()
    path = [bytes(h) for h in hashes or ()]
    if len(path) != len(offsets) or any(len(h) != merkle.HASH_SIZE for h in path):
        return None
    return index, path


def _proof(seal: PredictionSeal, index: int, leaf: bytes, path: list[bytes]) -> dict[str, object]:
    return {
        "seal": seal.pk,
        "root": seal.root,
        "tree_size": seal.tree_size,
        "leaf_index": index,
        "leaf_hash": leaf.hex(),
        "audit_path": [h.hex() for h in path],
        "audit_event_seq": seal.audit_seq,
        "algorithm": "RFC 6962: leaf = SHA-256(0x00 || canonical JSON), node = SHA-256(0x01 || left || right)",
    }


def inclusion_proof(record: PredictionLog) -> dict[str, object] | None:
    """The record's RFC 6962 inclusion proof in its seal: the leaf recomputed from the record's
    own data, the path read from the stored tree. A seal without a stored tree, or a stored path
    that does not lead from that leaf to the seal's root (a record or a tree changed since),
    falls back to recomputing every leaf of the seal, as proofs were made before."""
    if record.seal_id is None:
        return None
    seal = record.seal
    assert seal is not None  # seal_id is set
    leaf = record_leaf(record)
    stored = stored_path(seal, record.pk)
    if stored is not None:
        index, path = stored
        if merkle.verify_inclusion(index, seal.tree_size, leaf, path, bytes.fromhex(seal.root)):
            return _proof(seal, index, leaf, path)
    return recomputed_inclusion_proof(record)


def recomputed_inclusion_proof(record: PredictionLog) -> dict[str, object] | None:
    """The proof from every leaf of the seal recomputed from its records (O(n))."""
    if record.seal_id is None:
        return None
    seal = record.seal
    assert seal is not None  # seal_id is set
    records, leaves = seal_leaves(seal)
    index = next(i for i, r in enumerate(records) if r.pk == record.pk)
    return _proof(seal, index, leaves[index], merkle.inclusion_proof(index, leaves))
