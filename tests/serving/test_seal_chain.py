"""Seals are proven by the audit chain, not by the seal table, and every record carries a MAC:
what a DBA can do to the log is named by verify_audit."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from serving import merkle
from serving.log import LEAF_FIELDS, leaf_of
from serving.models import PredictionLog, PredictionSeal
from serving.seals import seal_leaves, seal_predictions
from tests.conftest import tamper
from tests.serving.conftest import rows

pytestmark = pytest.mark.django_db


def answered(keyed, production, german, n: int = 3) -> list[PredictionLog]:
    url = f"/api/v1/models/{production.registered_model.name}/predict"
    for _ in range(n):
        assert keyed.post(url, {"instances": rows(german, 2)}, format="json").status_code == 200
    return list(PredictionLog.objects.filter(outcome="ok").order_by("pk"))


def _fails(match: str) -> None:
    with pytest.raises(CommandError, match=match):
        call_command("verify_audit")


def _outputs_flipped(record: PredictionLog) -> str:
    """The record's outputs with its first prediction changed (1 -> 0 or 0 -> 1)."""
    text = record.outputs_json
    first, other = (
        ('"predictions":[1', '"predictions":[0')
        if '"predictions":[1' in text
        else ('"predictions":[0', '"predictions":[1')
    )
    assert first in text
    return text.replace(first, other, 1)


def test_a_sealed_record_edited_with_the_seal_table_root_updated_to_match_is_named(production, keyed, german):
    records = answered(keyed, production, german)
    seal = seal_predictions()
    call_command("verify_audit")
    tamper(PredictionLog, {"pk": records[0].pk}, outputs_json=_outputs_flipped(records[0]))
    _, leaves = seal_leaves(seal)
    PredictionSeal.objects.filter(pk=seal.pk).update(root=merkle.root(leaves).hex())  # no trigger guards this table
    _fails(f"seal #{seal.pk}: the records no longer match the root its audit event")


def test_a_deleted_seal_with_its_records_is_named(production, keyed, german):
    answered(keyed, production, german)
    seal = seal_predictions()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE serving_predictionlog DISABLE TRIGGER USER")
        try:
            cursor.execute("DELETE FROM serving_predictionoutcome")
            cursor.execute("DELETE FROM serving_predictionlog WHERE seal_id = %s", [seal.pk])
            cursor.execute("DELETE FROM serving_sealtree WHERE seal_id = %s", [seal.pk])
            cursor.execute("DELETE FROM serving_predictionseal WHERE id = %s", [seal.pk])
        finally:
            if connection.vendor == "postgresql":
                cursor.execute("ALTER TABLE serving_predictionlog ENABLE TRIGGER USER")
    _fails(f"seal #{seal.pk} \\(audit event #\\d+\\) covered {seal.tree_size} records but 0 are left")


def test_a_record_changed_before_sealing_fails_verification(production, keyed, german):
    records = answered(keyed, production, german)
    tamper(PredictionLog, {"pk": records[1].pk}, outputs_json=_outputs_flipped(records[1]))
    seal = seal_predictions()
    _fails(f"seal #{seal.pk} \\(audit event #\\d+\\): record {records[1].public_id} was changed before it was sealed")


def test_an_unsealed_record_edited_with_a_recomputed_hash_fails_on_its_mac(production, keyed, german):
    records = answered(keyed, production, german)
    edited = _outputs_flipped(records[2])
    record = PredictionLog.objects.get(pk=records[2].pk)
    record.outputs_json = edited
    new_leaf = leaf_of(tuple(getattr(record, name) for name in LEAF_FIELDS)).hex()
    tamper(PredictionLog, {"pk": record.pk}, outputs_json=edited, leaf_hash=new_leaf)
    _fails(f"record {record.public_id} does not match its MAC")


def test_every_record_carries_a_mac_of_its_leaf(production, keyed, german):
    from serving.log import mac_of, record_leaf

    for record in answered(keyed, production, german, 1):
        assert len(record.mac) == 64 and record.mac == mac_of(record_leaf(record))


def test_a_sealed_records_mac_is_checked_as_its_seal_is_verified(production, keyed, german):
    """Each record is read once: the pass that recomputes its seal's root checks its MAC too."""
    records = answered(keyed, production, german)
    seal_predictions()
    tamper(PredictionLog, {"pk": records[1].pk}, mac="0" * 64)
    _fails(f"record {records[1].public_id} does not match its MAC")


def test_a_record_that_claims_a_seal_outside_its_span_is_still_checked_for_its_mac(production, keyed, german):
    """A seal's records are read within the time span its event recorded; a record written after
    it, attached to it with a forged MAC, is not among them, and is read for its MAC afterwards."""
    records = answered(keyed, production, german)
    seal = seal_predictions()
    assert seal is not None and seal.tree_size == len(records)
    later = answered(keyed, production, german, 1)[-1]
    tamper(PredictionLog, {"pk": later.pk}, seal_id=seal.pk, mac="f" * 64)
    _fails(f"record {later.public_id} does not match its MAC")


def test_a_version_report_names_a_record_whose_mac_alone_was_changed(production, keyed, german):
    from compliance import report_context
    from serving import selectors

    records = answered(keyed, production, german)
    seal_predictions()
    assert report_context.verification(selectors.seals_covering(production.pk))["ok"] is True
    tamper(PredictionLog, {"pk": records[0].pk}, mac="0" * 64)
    verified = report_context.verification(selectors.seals_covering(production.pk))
    assert verified["ok"] is False
    assert f"record {records[0].public_id} does not match its MAC" in verified["seals"]["message"]


def test_a_record_without_a_mac_that_claims_a_seal_outside_its_span_fails(production, keyed, german):
    """A record without a MAC is proven by its seal alone: one that names a seal whose root never
    covered it (outside the span its event recorded) is named, not taken on that seal's word."""
    records = answered(keyed, production, german)
    seal = seal_predictions()
    assert seal is not None and seal.tree_size == len(records)
    later = answered(keyed, production, german, 1)[-1]
    tamper(PredictionLog, {"pk": later.pk}, seal_id=seal.pk, mac="")
    _fails(f"record {later.public_id} names seal #{seal.pk} but lies outside the time span")
