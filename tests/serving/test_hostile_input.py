"""A refused request's log record digests the body as sent, and the hostile
inputs of the issue's list that had no test yet are a logged 4xx, never a 500."""

from __future__ import annotations

import hashlib
import json

import pytest

from serving.models import PredictionLog, PredictionOutcome
from tests.serving.conftest import rows
from tests.serving.test_predict import predict

pytestmark = pytest.mark.django_db

V1 = "/api/v1/models/credit-risk/predict"
V2 = "/v2/models/credit-risk/infer"


def post(client, url: str, body: bytes):
    return client.generic("POST", url, body, content_type="application/json")


def digest_of(body: bytes) -> dict[str, object]:
    return {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body), "digest_of": "request body"}


@pytest.mark.parametrize("url", [V1, V2], ids=["v1", "v2"])
def test_a_malformed_body_is_logged_with_the_digest_and_size_of_the_body_as_sent(keyed, production, url):
    body = b'{"instances": [{"age": 1}, ' + b"x" * 5000  # not JSON: nothing but the bytes can be digested
    response = post(keyed, url, body)
    assert response.status_code == 400
    record = PredictionLog.objects.get()
    assert record.outcome == "invalid"
    assert record.inputs == {"rows_sent": None, "sample": [], **digest_of(body)}


def test_a_refused_v1_request_with_many_rows_digests_the_body_not_a_re_encoding(keyed, production, german, settings):
    settings.REFUSED_LOG_SAMPLE_ROWS = 2
    instances = rows(german, 3)
    instances[2]["age"] = "old"
    body = json.dumps({"instances": instances}, indent=3).encode()  # spaced: compact JSON would differ
    assert post(keyed, V1, body).status_code == 400
    logged = PredictionLog.objects.get(outcome="invalid").inputs
    assert logged == {"rows_sent": 3, "sample": instances[:2], **digest_of(body)}


def test_a_refused_v2_request_with_many_rows_digests_the_body_not_a_re_encoding(keyed, production, german, settings):
    settings.REFUSED_LOG_SAMPLE_ROWS = 2
    instances = rows(german, 3)
    instances[2]["age"] = "old"
    types = {"job": "INT64", "credit_amount": "INT64", "duration": "INT64", "age": "INT64"}
    inputs = [
        {"name": n, "datatype": types.get(n, "BYTES"), "shape": [3], "data": [r[n] for r in instances]}
        for n in instances[0]
    ]
    body = json.dumps({"id": "r-1", "inputs": inputs}, indent=1).encode()
    assert post(keyed, V2, body).status_code == 400
    logged = PredictionLog.objects.get(outcome="invalid", protocol="v2").inputs
    assert logged["rows_sent"] == 3 and len(logged["sample"]) == 2
    assert {k: logged[k] for k in ("sha256", "bytes", "digest_of")} == digest_of(body)


def test_v2_data_nested_900_deep_is_a_logged_400_never_a_500(keyed, production):
    deep = "[" * 900 + "1" + "]" * 900
    body = ('{"inputs": [{"name": "age", "datatype": "INT64", "shape": [1], "data": ' + deep + "}]}").encode()
    response = post(keyed, V2, body)
    assert response.status_code == 400, response.content[:300]
    record = PredictionLog.objects.get()
    assert record.outcome == "invalid" and record.protocol == "v2"


@pytest.mark.parametrize(
    "payload",
    [
        {"actual": "\x00"},
        {"actual": 1, "sensitive": {"sex": "fe\x00male"}},
        {"actual": 1, "sensitive": {"s\x00ex": "female"}},
    ],
    ids=["actual", "sensitive-value", "sensitive-name"],
)
def test_nul_in_an_outcome_is_a_named_400_and_nothing_is_stored(keyed, production, german, payload):
    prediction_id = answered_id(keyed, german)
    response = keyed.post(f"/api/v1/predictions/{prediction_id}/outcome", payload, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_outcome"
    bulk = keyed.post("/api/v1/outcomes", {"outcomes": [{"prediction_id": prediction_id, **payload}]}, format="json")
    assert bulk.status_code == 400 and bulk.json()["error"]["code"] == "invalid_outcome"
    assert not PredictionOutcome.objects.exists()


def test_nul_in_a_prediction_id_is_a_404_never_a_500(keyed, production):
    response = keyed.post("/api/v1/predictions/abc%00.1/outcome", {"actual": 1}, format="json")
    assert response.status_code == 404
    bulk = keyed.post("/api/v1/outcomes", {"outcomes": [{"prediction_id": "a\x00.1", "actual": 1}]}, format="json")
    assert bulk.status_code == 400


HOSTILE_OUTCOMES = pytest.mark.parametrize(
    "body, reason",
    [
        (b'{"actual": ' + b"[" * 2000 + b"]" * 2000 + b"}", "nested too deeply"),
        (b'{"actual": 1, "sensitive": {"sex": "\\ud800"}}', "lone UTF-16 surrogate"),
    ],
    ids=["nested-2000-deep", "lone-surrogate"],
)


def answered_id(client, german) -> str:
    answered = predict(client, instances=rows(german, 1))
    assert answered.status_code == 200
    return answered.json()["prediction_ids"][0]


@HOSTILE_OUTCOMES
def test_a_hostile_outcome_body_is_a_400_never_a_500(keyed, production, german, body, reason):
    response = post(keyed, f"/api/v1/predictions/{answered_id(keyed, german)}/outcome", body)
    assert response.status_code == 400, response.content[:300]
    assert reason in response.json()["error"]["message"]
    assert not PredictionOutcome.objects.exists()


@HOSTILE_OUTCOMES
def test_a_hostile_bulk_outcome_body_is_a_400_never_a_500(keyed, production, german, body, reason):
    prediction_id = answered_id(keyed, german)
    wrapped = b'{"outcomes": [{"prediction_id": "' + prediction_id.encode() + b'", ' + body[1:] + b"]}"
    response = post(keyed, "/api/v1/outcomes", wrapped)
    assert response.status_code == 400, response.content[:300]
    assert reason in response.json()["error"]["message"]
    assert not PredictionOutcome.objects.exists()


@HOSTILE_OUTCOMES
def test_a_hostile_review_body_is_a_400_never_a_500(keyed, production, german, body, reason):
    response = post(keyed, f"/api/v1/predictions/{answered_id(keyed, german)}/review", body)
    assert response.status_code == 400, response.content[:300]
    assert reason in response.json()["error"]["message"]


def test_nul_in_a_review_is_a_400_never_a_500(keyed, production, german):
    url = f"/api/v1/predictions/{answered_id(keyed, german)}/review"
    response = keyed.post(url, {"action": "confirmed", "justification": "Checked\x00."}, format="json")
    assert response.status_code == 400, response.content[:300]
