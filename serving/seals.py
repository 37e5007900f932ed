"""Sealing the prediction log: unsealed records, in id order, become the leaves of an RFC 6962
Merkle tree whose root is written to the audit trail. Verification recomputes every leaf from
the record's content, so an edited record no longer matches its seal."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from core import audit
from serving import merkle
from serving.log import LEAF_FIELDS, leaf_of
from serving.models import PredictionLog, PredictionSeal

SEALED = "serving.predictions.sealed"


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
    root = merkle.root(leaves).hex()
    ids = [row[width] for row in rows]
    seal = PredictionSeal.objects.create(root=root, tree_size=len(ids), first_record=ids[0], last_record=ids[-1])
    for start in range(0, len(ids), 5000):
        PredictionLog.objects.filter(pk__in=ids[start : start + 5000]).update(seal=seal)
    event = audit.record(
        SEALED,
        actor=None,
        target=seal,
        data={
            "root": root,
            "tree_size": seal.tree_size,
            "first_record": seal.first_record,
            "last_record": seal.last_record,
            "changed_before_sealing": tampered,
        },
    )
    seal.audit_seq = event.seq
    seal.save(update_fields=["audit_seq"])
    return seal


@dataclass(frozen=True)
class SealedRecord:
    pk: int
    public_id: str
    leaf_hash: str  # as stored when the record was written


def seal_leaves(seal: PredictionSeal) -> tuple[list[SealedRecord], list[bytes]]:
    """The seal's records in leaf order, and each leaf recomputed from the row's current content
    (values, not model instances: a seal may cover 100,000 records)."""
    rows = PredictionLog.objects.filter(seal=seal).order_by("pk").values_list(*LEAF_FIELDS, "pk", "leaf_hash")
    records, leaves = [], []
    width = len(LEAF_FIELDS)
    for row in rows.iterator(chunk_size=5000):
        records.append(SealedRecord(pk=row[width], public_id=str(row[0]), leaf_hash=row[width + 1]))
        leaves.append(leaf_of(row[:width]))
    return records, leaves


@dataclass(frozen=True)
class SealVerification:
    ok: bool
    seals_checked: int
    message: str


def verify_seals(seals: QuerySet[PredictionSeal] | None = None) -> SealVerification:
    """Recompute every seal's root (or the given seals') from its records; name the first seal
    (and record) that differs."""
    count = 0
    for seal in (PredictionSeal.objects.all() if seals is None else seals).order_by("pk").iterator():
        count += 1
        records, leaves = seal_leaves(seal)
        if len(records) != seal.tree_size:
            return SealVerification(
                False, count, f"seal #{seal.pk} covered {seal.tree_size} records but {len(records)} are left"
            )
        if merkle.root(leaves).hex() != seal.root:
            changed = [str(r.public_id) for r, leaf in zip(records, leaves, strict=True) if leaf.hex() != r.leaf_hash]
            which = f" (record {changed[0]} changed)" if changed else ""
            return SealVerification(False, count, f"seal #{seal.pk}: the records no longer match its root{which}")
    return SealVerification(True, count, f"{count} prediction seals verified")


def inclusion_proof(record: PredictionLog) -> dict[str, object] | None:
    if record.seal_id is None:
        return None
    seal = record.seal
    assert seal is not None  # seal_id is set
    records, leaves = seal_leaves(seal)
    index = next(i for i, r in enumerate(records) if r.pk == record.pk)
    return {
        "seal": seal.pk,
        "root": seal.root,
        "tree_size": seal.tree_size,
        "leaf_index": index,
        "leaf_hash": leaves[index].hex(),
        "audit_path": [h.hex() for h in merkle.inclusion_proof(index, leaves)],
        "audit_event_seq": seal.audit_seq,
        "algorithm": "RFC 6962: leaf = SHA-256(0x00 || canonical JSON), node = SHA-256(0x01 || left || right)",
    }
