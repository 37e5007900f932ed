"""Decisions over the API: business keys, stored explanations, human reviews."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rest_framework.test import APIClient

from core import audit
from core.models import AuditEvent
from lifecycle import demo_data
from serving import seals
from serving.log import record_leaf
from serving.models import DecisionReview, Explanation, PredictionKey, PredictionLog
from tests.serving.conftest import rows
from tests.serving.test_predict import infer, predict


def person(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


pytestmark = pytest.mark.django_db


def adverse_row(german, logreg) -> dict:
    frame = german[1][demo_data.NUMERIC + demo_data.CATEGORICAL]
    return frame.iloc[int(np.argmin(logreg.decision_function(frame)))].to_dict()


def test_business_keys_are_stored_covered_by_the_leaf_and_found(keyed, production, german, auditor):
    response = predict(keyed, instances=rows(german, 2), business_keys=["2026-118", "2026-119"])
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["business_keys"] == ["2026-118", "2026-119"]
    record = PredictionLog.objects.get(public_id=body["prediction_ids"][0].split(".")[0])
    assert record.business_keys == ["2026-118", "2026-119"]
    assert record.leaf_hash == record_leaf(record).hex()
    record.business_keys_json = '["2026-999","2026-119"]'
    assert record_leaf(record).hex() != record.leaf_hash  # the keys are under the leaf and the MAC
    index = PredictionKey.objects.filter(record_id=record.public_id).values_list("row", "key")
    assert sorted(index) == [(0, "2026-118"), (1, "2026-119")]  # one index row per keyed row, in order
    api_client = person(auditor)
    found = api_client.get("/api/v1/predictions/", {"business_key": "2026-119"}).json()["results"]
    assert [r["id"] for r in found] == [str(record.public_id)]
    assert api_client.get("/api/v1/predictions/", {"business_key": "nope"}).json()["results"] == []


def test_a_wrong_count_of_business_keys_is_a_named_logged_400(keyed, production, german):
    response = predict(keyed, instances=rows(german, 2), business_keys=["only-one"])
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_business_keys"
    assert "1 keys for 2 instances" in response.json()["error"]["message"]
    assert PredictionLog.objects.latest("pk").outcome == "invalid"


def test_v2_takes_business_keys_from_parameters(keyed, production, german):
    response = infer(keyed, rows(german, 2), parameters={"business_keys": ["A-1", "A-2"]})
    assert response.status_code == 200, response.content
    assert PredictionLog.objects.latest("pk").business_keys == ["A-1", "A-2"]
    bad = infer(keyed, rows(german, 2), parameters={"business_keys": ["A-1"]})
    assert bad.status_code == 400 and "instances" in bad.json()["error"]


def test_explanation_is_stored_once_audited_and_the_same_every_call(keyed, production, german, logreg):
    body = predict(keyed, instances=[adverse_row(german, logreg)], business_keys=["2026-118"]).json()
    pid = body["prediction_ids"][0]
    first = keyed.get(f"/api/v1/predictions/{pid}/explanation")
    assert first.status_code == 200, first.content
    data = first.json()
    assert data["method"].startswith("exact linear") and data["adverse"] is True
    frame = german[1][demo_data.NUMERIC + demo_data.CATEGORICAL]
    row = frame.iloc[[int(np.argmin(logreg.decision_function(frame)))]]
    assert abs(data["base_value"] + sum(data["contributions"].values()) - logreg.decision_function(row)[0]) < 1e-9
    assert 1 <= len(data["reason_codes"]) <= 4
    assert data["counterfactual"]["changes"], data["counterfactual"]
    second = keyed.get(f"/api/v1/predictions/{pid}/explanation").json()
    assert second == data
    assert Explanation.objects.count() == 1
    event = AuditEvent.objects.get(action=audit.EXPLANATION_RECORDED)
    assert event.data["evidence"][0]["row"].startswith("serving.explanation:")


def test_explain_true_returns_and_logs_each_rows_explanation(keyed, production, german):
    body = predict(keyed, instances=rows(german, 3), explain=True).json()
    assert len(body["explanations"]) == 3
    record = PredictionLog.objects.latest("pk")
    assert record.outputs["explanations"] == body["explanations"]  # under the leaf
    later = keyed.get(f"/api/v1/predictions/{body['prediction_ids'][1]}/explanation").json()
    for name in ("method", "base_value", "contributions", "reason_codes"):
        assert later[name] == body["explanations"][1][name]


def test_reviews_are_kept_in_order_and_audited(keyed, production, german, second_scientist, outsider):
    pid = predict(keyed, instances=rows(german, 1)).json()["prediction_ids"][0]
    automated = PredictionLog.objects.latest("pk").outputs["predictions"][0]
    url = f"/api/v1/predictions/{pid}/review"
    first = keyed.post(
        url, json.dumps({"action": "confirmed", "justification": "Checked income."}), content_type="application/json"
    )
    assert first.status_code == 201, first.content
    api_client = person(second_scientist)  # (not the version's creator: tests/serving/test_duties.py)
    other = 1 - automated
    second = api_client.post(
        url,
        json.dumps({"action": "overridden", "final_decision": other, "justification": "New payslip."}),
        content_type="application/json",
    )
    assert second.status_code == 201, second.content
    assert [(r.seq, r.action, r.final_decision) for r in DecisionReview.objects.order_by("seq")] == [
        (1, "confirmed", automated),
        (2, "overridden", other),
    ]
    assert AuditEvent.objects.filter(action=audit.DECISION_REVIEWED).count() == 2
    listed = keyed.get(url).json()["reviews"]
    assert [r["seq"] for r in listed] == [1, 2]
    no_reason = api_client.post(url, json.dumps({"action": "confirmed"}), content_type="application/json")
    assert no_reason.status_code == 400
    bad_class = api_client.post(
        url,
        json.dumps({"action": "overridden", "final_decision": "maybe", "justification": "x"}),
        content_type="application/json",
    )
    assert bad_class.status_code == 400
    api_client = person(outsider)
    assert (
        api_client.post(
            url, json.dumps({"action": "confirmed", "justification": "x"}), content_type="application/json"
        ).status_code
        == 403
    )
    assert api_client.get(f"/api/v1/predictions/{pid}/explanation").status_code == 403


def test_verification_still_passes_with_keys_explanations_and_reviews(keyed, production, german):
    from compliance.evidence import verify_evidence

    pid = predict(keyed, instances=rows(german, 1), business_keys=["K-1"]).json()["prediction_ids"][0]
    keyed.get(f"/api/v1/predictions/{pid}/explanation")
    keyed.post(
        f"/api/v1/predictions/{pid}/review",
        json.dumps({"action": "confirmed", "justification": "ok"}),
        content_type="application/json",
    )
    seals.seal_predictions()
    assert seals.verify_seals().ok
    assert verify_evidence().ok, verify_evidence().message
    record = PredictionLog.objects.latest("pk")
    proof = seals.inclusion_proof(record)
    assert proof is not None and proof["leaf_hash"] == record.leaf_hash


def test_explain_true_reuses_the_engines_inputs_and_is_exact(keyed, production, german, logreg):
    from serving import decisions, engine
    from serving.inputs import to_frame

    instances = rows(german, 5)
    body = predict(keyed, instances=instances, explain=True).json()
    record = PredictionLog.objects.latest("pk")
    frame = german[1][demo_data.NUMERIC + demo_data.CATEGORICAL].head(5)
    for explanation, expected in zip(body["explanations"], logreg.decision_function(frame), strict=True):
        assert abs(explanation["base_value"] + sum(explanation["contributions"].values()) - expected) < 1e-9
    # whichever inputs the engine built (ONNX tensors, the skops frame) or none: the same numbers
    # as explaining a frame rebuilt from the rows, to the last bit
    result = engine.predict(production, instances)
    assert record.engine == result.engine == "onnx" and result.tensors is not None
    labels = body["predictions"]
    built = decisions.explain_rows(production, instances, labels, tensors=result.tensors)
    from_frame = decisions.explain_rows(
        production, instances, labels, frame=to_frame(instances, production.input_schema)
    )
    from_rows = decisions.explain_rows(production, instances, labels)
    assert built == from_frame == from_rows == body["explanations"]
    explainer = decisions.explaining(production).explainer
    rebuilt = explainer.attribute(to_frame(instances, production.input_schema))
    assert [e["contributions"] for e in body["explanations"]] == [a.contributions for a in rebuilt]


def test_the_explainer_is_cached_per_version_and_artifact_hash(production):
    from serving import decisions

    decisions.clear_cache()
    first = decisions.explaining(production)
    assert decisions.explaining(production) is first  # built once per process
    assert all(key[1] == production.artifact_sha256 for key in decisions._cache)
