"""Sealing the prediction log and proving a record's inclusion, checked with an independent
few-line RFC 6962 implementation."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from core.models import AuditEvent
from serving.models import PredictionLog
from serving.seals import seal_predictions
from tests.serving.conftest import rows

pytestmark = pytest.mark.django_db


def _h(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def verify_rfc6962(index: int, size: int, leaf_hash: bytes, path: list[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2, written independently of serving/merkle.py."""
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _h(b"\x01" + p + r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _h(b"\x01" + r + p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def serve_some(keyed, german, n: int) -> list[str]:
    ids = []
    for i in range(n):
        body = json.dumps({"instances": rows(german, 1 + i % 3)})
        ids += keyed.post("/api/v1/models/credit-risk/predict", body, content_type="application/json").json()[
            "prediction_ids"
        ]
    return ids


def test_seal_covers_every_unsealed_record_and_is_audited(keyed, production, german):
    serve_some(keyed, german, 7)
    seal = seal_predictions()
    assert seal.tree_size == 7 and PredictionLog.objects.filter(seal__isnull=True).count() == 0
    event = AuditEvent.objects.get(action="serving.predictions.sealed")
    assert event.data["root"] == seal.root and event.data["tree_size"] == 7
    assert seal_predictions() is None
    call_command("verify_audit")


def test_inclusion_proof_from_the_api_verifies_independently(keyed, api_client, auditor, production, german):
    ids = serve_some(keyed, german, 11)
    seal_predictions()
    api_client.force_authenticate(auditor)
    for pid in (ids[0], ids[5], ids[-1]):
        body = api_client.get(f"/api/v1/predictions/{pid}/").json()
        proof = body["inclusion_proof"]
        record = PredictionLog.objects.get(public_id=pid.split(".")[0])
        assert proof["leaf_hash"] == record.leaf_hash
        assert verify_rfc6962(
            proof["leaf_index"],
            proof["tree_size"],
            bytes.fromhex(proof["leaf_hash"]),
            [bytes.fromhex(h) for h in proof["audit_path"]],
            bytes.fromhex(proof["root"]),
        )
        assert not verify_rfc6962(
            proof["leaf_index"],
            proof["tree_size"],
            _h(b"\x00forged"),
            [bytes.fromhex(h) for h in proof["audit_path"]],
            bytes.fromhex(proof["root"]),
        )
        assert body["decisions"][0]["by"] == "rita" and body["version_detail"]["status"] == "production"
    row = api_client.get(f"/api/v1/predictions/{ids[1]}/").json()
    assert row["row"] == int(ids[1].split(".")[1]) and "row_input" in row


def test_editing_a_sealed_record_makes_verify_audit_fail(keyed, production, german):
    ids = serve_some(keyed, german, 4)
    seal_predictions()
    record_id = ids[2].split(".")[0]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE serving_predictionlog DISABLE TRIGGER USER")
        table = PredictionLog._meta.db_table
        pk = PredictionLog.objects.get(public_id=record_id).pk
        cursor.execute(f"UPDATE {table} SET outputs_json = %s WHERE id = %s", ['{"predictions":[0]}', pk])  # noqa: S608
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE serving_predictionlog ENABLE TRIGGER USER")
    with pytest.raises(CommandError, match=f"record {record_id} changed"):
        call_command("verify_audit")


def test_predictions_list_is_for_auditors_and_filters(
    api_client, keyed, auditor, outsider, data_scientist, production, german
):
    serve_some(keyed, german, 5)
    api_client.credentials()
    api_client.force_authenticate(outsider)
    assert api_client.get("/api/v1/predictions/").status_code == 403
    api_client.force_authenticate(data_scientist)
    assert api_client.get("/api/v1/predictions/").status_code == 403
    api_client.force_authenticate(auditor)
    page = api_client.get("/api/v1/predictions/?model=credit-risk&version=1&page_size=2").json()
    assert len(page["results"]) == 2 and page["next"]
    rest = api_client.get(page["next"]).json()
    assert len(rest["results"]) == 2
    assert api_client.get("/api/v1/predictions/?model=other").json()["results"] == []
    assert api_client.get("/api/v1/predictions/?since=not-a-date").status_code == 400


def test_outcomes_arrive_later_once(keyed, production, german):
    pid = serve_some(keyed, german, 1)[0]
    url = f"/api/v1/predictions/{pid}/outcome"
    assert keyed.post(url, json.dumps({"actual": 1}), content_type="application/json").status_code == 201
    assert keyed.post(url, json.dumps({"actual": 0}), content_type="application/json").status_code == 409
    assert keyed.post("/api/v1/predictions/nope/outcome", "{}", content_type="application/json").status_code == 404
