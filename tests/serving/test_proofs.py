"""Inclusion proofs read from the tree stored with each seal: the same proof as recomputing every
leaf, for trees of every shape, checked with the independent verifier of test_seals; seals
written before trees were stored still prove by recomputing; a stored tree that was edited never
yields a wrong proof and is named by verification."""

from __future__ import annotations

import json
import math
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core import audit
from core.models import AuditEvent
from serving import merkle, seals
from serving.log import LEAF_FIELDS, leaf_of, mac_of, record_leaf
from serving.models import PredictionLog, PredictionSeal, SealTree
from tests.conftest import tamper
from tests.serving.conftest import rows
from tests.serving.test_seals import verify_rfc6962

SIZES = (1, 2, 3, 5, 6, 8, 13)  # powers of two and not


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(f"record {i}".encode()) for i in range(n)]


@pytest.mark.parametrize("size", [*range(1, 40), 64, 100, 129, 1000])
def test_paths_read_from_a_packed_tree_are_the_rfc_6962_paths(size):
    leaves = _leaves(size)
    levels = merkle.tree_levels(leaves)
    packed = merkle.pack_levels(levels)
    assert levels[-1] == [merkle.root(leaves)]
    assert len(packed) == sum(merkle.level_sizes(size)) * merkle.HASH_SIZE
    for index in sorted({*range(min(size, 40)), size // 2, size - 2, size - 1} - {-1}):
        offsets = merkle.path_offsets(index, size)
        path = [packed[o : o + merkle.HASH_SIZE] for o in offsets]
        assert path == merkle.inclusion_proof(index, leaves)
        assert len(path) <= math.ceil(math.log2(size)) if size > 1 else not path


def test_record_runs_find_every_leaf_index_across_gaps():
    ids = [5, 6, 7, 10, 11, 40, 42, 43, 44]
    runs = seals.record_runs(ids)
    assert len(runs) == 4 * 16
    assert [seals.leaf_index(runs, pk) for pk in ids] == list(range(len(ids)))
    assert seals.leaf_index(runs, 8) is None and seals.leaf_index(runs, 4) is None
    assert seals.record_runs(list(range(100, 200))) == seals._RUN.pack(100, 100)


def _serve(keyed, german, n: int) -> None:
    url = "/api/v1/models/credit-risk/predict"
    for i in range(n):
        body = json.dumps({"instances": rows(german, 1 + i % 2)})
        assert keyed.post(url, body, content_type="application/json").status_code == 200


def _check_every_record(seal: PredictionSeal, monkeypatch) -> None:
    """Every record's proof comes from the stored tree (no leaf recomputed), equals the
    recomputed proof, and verifies against the root the seal's audit event recorded."""
    chained_root = AuditEvent.objects.get(seq=seal.audit_seq).data["root"]
    records = list(PredictionLog.objects.filter(seal=seal).select_related("seal").order_by("pk"))
    assert len(records) == seal.tree_size
    expected = [seals.recomputed_inclusion_proof(r) for r in records]
    with monkeypatch.context() as patched:
        patched.setattr(seals, "seal_leaves", lambda *a: pytest.fail("a stored proof recomputed the seal's leaves"))
        for index, (record, recomputed) in enumerate(zip(records, expected, strict=True)):
            with CaptureQueriesContext(connection) as queries:
                proof = seals.inclusion_proof(record)
            assert len(queries) <= 2  # the runs, then the path's hashes
            assert proof == recomputed and proof is not None
            assert proof["leaf_index"] == index and proof["leaf_hash"] == record_leaf(record).hex()
            path = [bytes.fromhex(h) for h in proof["audit_path"]]
            assert verify_rfc6962(index, seal.tree_size, record_leaf(record), path, bytes.fromhex(chained_root))


@pytest.mark.django_db
def test_a_proof_from_the_stored_tree_equals_the_recomputed_one_for_several_tree_sizes(
    keyed, production, german, monkeypatch
):
    _serve(keyed, german, sum(SIZES))
    for size in SIZES:
        seal = seals.seal_predictions(batch_size=size)
        assert seal is not None and seal.tree_size == size
        tree = SealTree.objects.get(seal=seal)
        event = AuditEvent.objects.get(seq=seal.audit_seq)
        assert event.data["tree_sha256"] == seals.tree_digest(bytes(tree.levels), bytes(tree.record_runs))
        _check_every_record(seal, monkeypatch)
    verified = seals.verify_seals()
    assert verified.ok and verified.seals_checked == len(SIZES), verified.message


@pytest.mark.django_db
def test_a_seal_whose_record_ids_have_gaps_proves_from_its_stored_tree(keyed, production, german, monkeypatch):
    _serve(keyed, german, 4)
    last = PredictionLog.objects.latest("pk")
    # a record written later with a gap in the ids (a rolled-back transaction leaves one)
    copy = PredictionLog.objects.get(pk=last.pk)
    copy.pk, copy.public_id = last.pk + 7, uuid.uuid4()
    leaf = record_leaf(copy)
    copy.leaf_hash, copy.mac = leaf.hex(), mac_of(leaf)
    copy.save(force_insert=True)
    _serve(keyed, german, 2)
    seal = seals.seal_predictions()
    assert seal is not None and seal.tree_size == 7
    assert seal.last_record - seal.first_record + 1 > seal.tree_size
    assert len(SealTree.objects.get(seal=seal).record_runs) >= 2 * 16  # 3 on PostgreSQL, 2 on SQLite
    _check_every_record(seal, monkeypatch)
    assert seals.verify_seals().ok


def _seal_as_before_trees() -> PredictionSeal:
    """What seal_predictions wrote before trees were stored: the seal, its records attached, and
    the audit event with the root (no tree, no tree_sha256)."""
    found = list(PredictionLog.objects.filter(seal__isnull=True).order_by("pk").values_list(*LEAF_FIELDS, "pk"))
    leaves = [leaf_of(row[:-1]) for row in found]
    ids = [row[-1] for row in found]
    seal = PredictionSeal.objects.create(
        root=merkle.root(leaves).hex(), tree_size=len(ids), first_record=ids[0], last_record=ids[-1]
    )
    PredictionLog.objects.filter(pk__in=ids).update(seal=seal)
    event = audit.record(
        audit.PREDICTIONS_SEALED,
        actor=None,
        target=seal,
        data={
            "root": seal.root,
            "tree_size": seal.tree_size,
            "first_record": seal.first_record,
            "last_record": seal.last_record,
            "changed_before_sealing": [],
        },
    )
    seal.audit_seq = event.seq
    seal.save(update_fields=["audit_seq"])
    return seal


@pytest.mark.django_db
def test_a_seal_written_before_trees_were_stored_still_proves_by_recomputing(keyed, production, german, monkeypatch):
    _serve(keyed, german, 5)
    seal = _seal_as_before_trees()
    assert not SealTree.objects.filter(seal=seal).exists()
    recomputed = []
    original = seals.seal_leaves
    monkeypatch.setattr(seals, "seal_leaves", lambda s: recomputed.append(s) or original(s))
    for index, record in enumerate(PredictionLog.objects.filter(seal=seal).order_by("pk")):
        proof = seals.inclusion_proof(record)
        assert proof is not None and proof["leaf_index"] == index
        path = [bytes.fromhex(h) for h in proof["audit_path"]]
        assert verify_rfc6962(index, seal.tree_size, record_leaf(record), path, bytes.fromhex(seal.root))
    assert len(recomputed) == 5
    assert seals.verify_seals().ok


@pytest.mark.django_db
def test_an_edited_stored_tree_never_gives_a_wrong_proof_and_is_named(keyed, production, german):
    _serve(keyed, german, 6)
    seal = seals.seal_predictions()
    tree = SealTree.objects.get(seal=seal)
    levels = bytearray(tree.levels)
    levels[: merkle.HASH_SIZE] = bytes(merkle.HASH_SIZE)  # the first leaf zeroed
    tamper(SealTree, {"pk": seal.pk}, levels=bytes(levels))
    for index, record in enumerate(PredictionLog.objects.filter(seal=seal).order_by("pk")):
        proof = seals.inclusion_proof(record)
        assert proof == seals.recomputed_inclusion_proof(record)
        path = [bytes.fromhex(h) for h in proof["audit_path"]]
        assert verify_rfc6962(index, seal.tree_size, record_leaf(record), path, bytes.fromhex(seal.root))
    verified = seals.verify_seals()
    assert not verified.ok
    assert f"seal #{seal.pk}: its stored proof tree differs from what audit event #{seal.audit_seq}" in (
        verified.message
    )
    SealTree.objects.filter(pk=seal.pk).delete()
    assert "its stored proof tree, recorded in audit event" in seals.verify_seals().message
