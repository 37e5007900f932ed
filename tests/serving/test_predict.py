"""The serving APIs: only servable versions answer, every answer is logged first."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.db import connection

from governance import operations, workflow
from governance.policies import update_policy
from lifecycle import demo_data
from serving.models import PredictionLog
from tests.serving.conftest import OK, checked, rows, set_status

pytestmark = pytest.mark.django_db


def predict(client, model="credit-risk", **body):
    return client.post(f"/api/v1/models/{model}/predict", json.dumps(body), content_type="application/json")


def infer(client, instances, model="credit-risk", version=None, content_type=None, **extra):
    schema = [
        ("job", "INT64"),
        ("credit_amount", "INT64"),
        ("duration", "INT64"),
        ("age", "INT64"),
        ("sex", "BYTES"),
        ("housing", "BYTES"),
        ("saving_accounts", "BYTES"),
        ("checking_account", "BYTES"),
        ("purpose", "BYTES"),
    ]
    body = {
        "inputs": [
            {"name": n, "datatype": t, "shape": [len(instances)], "data": [r[n] for r in instances]} for n, t in schema
        ],
        **extra,
    }
    url = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    # v2 clients often send no Content-Type: the body is posted raw
    return client.generic("POST", url, json.dumps(body), content_type=content_type or "")


def test_production_version_answers_and_matches_the_skops_model(keyed, production, german, logreg):
    instances = rows(german, 5)
    response = predict(keyed, instances=instances)
    assert response.status_code == 200, response.content
    body = response.json()
    frame = german[1][demo_data.NUMERIC + demo_data.CATEGORICAL].head(5)
    assert body["predictions"] == logreg.predict(frame).tolist()
    assert np.allclose(body["probabilities"], logreg.predict_proba(frame), atol=1e-12)
    assert body["version"] == 1 and len(body["prediction_ids"]) == 5


def test_n_rows_served_means_n_rows_in_the_log(keyed, production, german):
    before = PredictionLog.objects.count()
    response = predict(keyed, instances=rows(german, 300))
    assert response.status_code == 200
    record = PredictionLog.objects.get(public_id=response.json()["prediction_ids"][0].split(".")[0])
    assert PredictionLog.objects.count() == before + 1
    assert record.n_rows == 300 and len(record.inputs) == 300 and len(record.outputs["predictions"]) == 300
    assert record.outputs["predictions"] == response.json()["predictions"]
    assert record.caller == "api-key:scoring-client" and record.outcome == "ok"


@pytest.mark.parametrize("status", ["draft", "checking", "in_review", "rejected", "retired"])
def test_unservable_versions_are_refused_on_both_apis_and_logged(keyed, production, german, status):
    set_status(production, status)
    response = predict(keyed, instances=rows(german, 1), version=1)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "version_not_servable"
    v2 = infer(keyed, rows(german, 1), version=1)
    assert v2.status_code == 403 and "only approved and production versions" in v2.json()["error"]
    default = predict(keyed, instances=rows(german, 1))
    assert default.status_code == 403
    assert PredictionLog.objects.filter(outcome="refused").count() == 3
    assert not PredictionLog.objects.filter(outcome="ok").exists()


def test_an_approved_version_answers_only_when_named(
    keyed, production, second_version, data_scientist, risk_officer, german
):
    version = checked(second_version, data_scientist)
    workflow.approve_version(version.pk, actor=risk_officer, justification=OK)
    assert predict(keyed, instances=rows(german, 1), version=2).json()["version"] == 2
    assert predict(keyed, instances=rows(german, 1)).json()["version"] == 1


def test_retiring_stops_serving_at_commit(keyed, production, risk_officer, german):
    assert predict(keyed, instances=rows(german, 1)).status_code == 200
    operations.retire_version(production.pk, actor=risk_officer, justification="End of life.")
    assert predict(keyed, instances=rows(german, 1)).status_code == 403


def test_unknown_model_and_version_are_404(keyed, production, german):
    assert predict(keyed, model="nope", instances=rows(german, 1)).status_code == 404
    assert predict(keyed, instances=rows(german, 1), version=7).status_code == 404
    assert infer(keyed, rows(german, 1), model="nope").status_code == 404


def test_input_errors_name_each_bad_field_and_row(keyed, production, german):
    instances = rows(german, 3)
    del instances[0]["age"]
    instances[1]["credit_amount"] = "lots"
    instances[2]["favourite_colour"] = "blue"
    response = predict(keyed, instances=instances)
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert {"row": 0, "field": "age", "error": "is missing"} in details
    assert {"row": 1, "field": "credit_amount", "error": "must be an integer, got str"} in details
    assert {"row": 2, "field": "favourite_colour", "error": "is not an input of this model"} in details
    assert PredictionLog.objects.filter(outcome="invalid").count() == 1


def test_nan_and_malformed_json_are_400(keyed, production, german):
    row = rows(german, 1)[0]
    body = json.dumps({"instances": [row]}).replace(f'"duration": {row["duration"]}', '"duration": NaN')
    response = keyed.post("/api/v1/models/credit-risk/predict", body, content_type="application/json")
    assert response.status_code == 400 and "duration" in response.json()["error"]["message"]
    bad = keyed.post("/api/v1/models/credit-risk/predict", "{not json", content_type="application/json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "malformed_json"
    v2 = keyed.generic("POST", "/v2/models/credit-risk/infer", "{not json", content_type="")
    assert v2.status_code == 400 and "not valid JSON" in v2.json()["error"]
    assert PredictionLog.objects.filter(outcome="invalid").count() == 3


def test_too_many_rows_is_413(keyed, production, german, settings):
    settings.SERVING_MAX_ROWS = 10
    response = predict(keyed, instances=rows(german, 11))
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_many_rows"


def _break_the_log() -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "ALTER TABLE serving_predictionlog ADD CONSTRAINT log_down CHECK (created_at IS NULL) NOT VALID"
            )
        else:
            cursor.execute(
                "CREATE TRIGGER log_down BEFORE INSERT ON serving_predictionlog "
                "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
            )


def test_when_the_log_cannot_be_written_the_answer_is_503_with_no_prediction(keyed, production, german):
    _break_the_log()
    response = predict(keyed, instances=rows(german, 2))
    assert response.status_code == 503
    body = response.json()
    assert body["error"]["code"] == "log_unavailable" and "predictions" not in body
    v2 = infer(keyed, rows(german, 2))
    assert v2.status_code == 503 and "outputs" not in v2.json()


def test_v2_metadata_ready_and_infer_echo_the_id_and_honour_outputs(keyed, production, german, logreg):
    meta = keyed.get("/v2/models/credit-risk").json()
    assert [i["name"] for i in meta["inputs"]] == demo_data.NUMERIC + demo_data.CATEGORICAL
    assert meta["outputs"][1] == {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]}
    assert keyed.get("/v2/models/credit-risk/ready").json()["ready"] is True
    assert keyed.get("/v2/models/credit-risk/versions/1/ready").status_code == 200
    response = infer(keyed, rows(german, 4), id="req-42", outputs=[{"name": "predict"}])
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == "req-42" and [o["name"] for o in body["outputs"]] == ["predict"]
    frame = german[1][demo_data.NUMERIC + demo_data.CATEGORICAL].head(4)
    assert body["outputs"][0]["data"] == logreg.predict(frame).tolist()
    assert len(body["parameters"]["prediction_ids"].split(",")) == 4
    assert PredictionLog.objects.get(request_id="req-42").protocol == "v2"


def test_v2_health(client):
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}


def test_v2_refuses_bad_tensors(keyed, production, german):
    response = keyed.generic(
        "POST",
        "/v2/models/credit-risk/infer",
        json.dumps({"inputs": [{"name": "age", "datatype": "FP64", "shape": [2], "data": [1.0]}]}),
        content_type="",
    )
    assert response.status_code == 400
    assert "missing input tensor 'job'" in response.json()["error"]


def test_people_without_a_role_cannot_predict(api_client, outsider, production, german):
    api_client.force_authenticate(outsider)
    assert predict(api_client, instances=rows(german, 1)).status_code == 403
    assert PredictionLog.objects.get().outcome == "refused"


def test_throttling_per_key(keyed, production, german, settings, monkeypatch):
    from django.core.cache import cache

    from serving import throttling

    cache.clear()
    settings.SERVING_RATE_PER_KEY = "2/min"
    codes = [predict(keyed, instances=rows(german, 1)).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    settings.SERVING_RATE_PER_KEY = "4/min"  # a sliding minute: 4 at the start of a minute, ...
    cache.clear()
    clock = [1_800_000_000.0]  # (a whole minute)
    monkeypatch.setattr(throttling.time, "time", lambda: clock[0])
    responses = [predict(keyed, instances=rows(german, 1)) for _ in range(5)]
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 429]
    assert responses[-1]["Retry-After"] == "75"  # ... then one more once 45 s of them are 60 s old
    clock[0] += 75
    assert predict(keyed, instances=rows(german, 1)).status_code == 200
    assert predict(keyed, instances=rows(german, 1)).status_code == 429
    cache.clear()


def test_onnx_runtime_serves_when_its_check_passed(keyed, production, german, logreg):
    response = predict(keyed, instances=rows(german, 20))
    record = PredictionLog.objects.get(public_id=response.json()["prediction_ids"][0].split(".")[0])
    assert record.engine == "onnx"
    frame = german[1][demo_data.NUMERIC + demo_data.CATEGORICAL].head(20)
    assert response.json()["predictions"] == logreg.predict(frame).tolist()
    assert np.allclose(response.json()["probabilities"], logreg.predict_proba(frame), atol=1e-5)


def test_the_skops_model_serves_when_onnx_disagrees(
    keyed, data_scientist, risk_officer, german, train_csv, eval_csv, registered_model
):
    """skl2onnx has no converter for LabelSpreading: its ONNX check fails (advisory) and the
    version is served, exactly, by the skops model."""
    import skops.io as sio
    from sklearn.pipeline import Pipeline
    from sklearn.semi_supervised import LabelSpreading

    from governance.models import CheckRun
    from governance.policies import active_policy
    from tests.conftest import make_version

    policy = active_policy()
    lenient = {"max_fairness_difference": 1.0, "min_fairness_ratio": 0.0, "min_accuracy": 0.0}
    lenient |= {"min_balanced_accuracy": 0.0, "min_roc_auc": 0.0, "min_f1": 0.0}
    update_policy(policy.pk, actor=None, justification="Set for this test.", changes=lenient)
    features = demo_data.NUMERIC + demo_data.CATEGORICAL
    spreading = Pipeline([("prepare", demo_data._preprocessor()), ("classify", LabelSpreading())])
    spreading.fit(german[0][features], german[0][demo_data.LABEL])
    version = checked(
        make_version(data_scientist, registered_model, sio.dumps(spreading), train_csv, eval_csv), data_scientist
    )
    onnx = CheckRun.objects.get(version=version, kind="onnx")
    assert onnx.status == "failed" and "served with its skops model" in onnx.warning, onnx.warning
    assert onnx.metrics["converted"] is False
    workflow.approve_version(version.pk, actor=risk_officer, justification=OK)
    workflow.deploy_version(version.pk, actor=risk_officer, justification="Go live.")
    response = predict(keyed, instances=rows(german, 20))
    frame = german[1][features].head(20)
    assert response.json()["probabilities"] == spreading.predict_proba(frame).tolist()
    assert response.json()["predictions"] == spreading.predict(frame).tolist()
    assert PredictionLog.objects.get(outcome="ok").engine == "skops"


def test_a_version_number_beyond_any_integer_column_is_404(keyed, production, german):
    huge = 2**70
    assert predict(keyed, instances=rows(german, 1), version=huge).status_code == 404
    assert keyed.get(f"/v2/models/credit-risk/versions/{huge}").status_code == 404


def test_missing_model_files_give_a_logged_503_not_a_500(keyed, production, german):
    import os

    from django.core.files.storage import default_storage

    from governance.models import CheckRun

    os.remove(production.artifact.path)
    onnx = CheckRun.objects.get(version=production, kind="onnx")
    os.remove(default_storage.path(onnx.metrics["onnx_file"]))
    response = predict(keyed, instances=rows(german, 1))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_unavailable" and "predictions" not in response.json()
    record = PredictionLog.objects.get()
    assert record.outcome == "error" and "model_unavailable" in record.reason


def test_a_random_forest_is_served_by_onnx_runtime_with_scikit_learns_answers(
    keyed, data_scientist, risk_officer, german, train_csv, eval_csv, registered_model
):
    """scikit-learn's trees compare float32 features; the converted forest now does too, so its
    ONNX check passes and ONNX Runtime answers with the same labels."""
    import skops.io as sio

    from governance.models import CheckRun
    from governance.policies import active_policy
    from tests.conftest import make_version

    policy = active_policy()
    update_policy(
        policy.pk,
        actor=None,
        justification="Set for this test.",
        changes={"max_fairness_difference": 1.0, "min_fairness_ratio": 0.0},
    )
    forest = demo_data.train_random_forest(german[0])
    version = checked(
        make_version(data_scientist, registered_model, sio.dumps(forest), train_csv, eval_csv), data_scientist
    )
    onnx = CheckRun.objects.get(version=version, kind="onnx")
    assert onnx.status == "passed", onnx.warning
    assert onnx.metrics["label_agreement"] == 1.0 and onnx.metrics["max_probability_difference"] <= 1e-5
    workflow.approve_version(version.pk, actor=risk_officer, justification=OK)
    workflow.deploy_version(version.pk, actor=risk_officer, justification="Go live.")
    frame = german[1][demo_data.NUMERIC + demo_data.CATEGORICAL]
    response = predict(keyed, instances=frame.to_dict(orient="records"))
    assert response.json()["predictions"] == forest.predict(frame).tolist()
    assert np.allclose(response.json()["probabilities"], forest.predict_proba(frame), atol=1e-5)
    assert PredictionLog.objects.get(outcome="ok").engine == "onnx"


def test_long_integers_are_logged_exactly_as_sent(keyed, production, german):
    """The fast JSON parser would turn a 25-digit integer into a float; the log keeps it exact.
    (Beyond int64, so refused: the refusal's record holds it as sent.)"""
    row = rows(german, 1)[0] | {"credit_amount": 10**24}
    response = keyed.post(
        "/api/v1/models/credit-risk/predict", data=json.dumps({"instances": [row]}), content_type="application/json"
    )
    assert response.status_code == 400, response.content  # an int64 column cannot hold it
    record = PredictionLog.objects.get()
    assert record.inputs[0]["credit_amount"] == 10**24
    assert '"credit_amount":1000000000000000000000000' in record.inputs_json


def test_nul_characters_from_the_client_are_refused_and_still_logged(keyed, production, german):
    """PostgreSQL text cannot hold NUL: the refusal is logged (NUL stored as U+FFFD), not a 503."""
    body = {"instances": rows(german, 1), "request_id": "order\u00007"}
    response = keyed.post("/api/v1/models/credit-risk/predict", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "The request id must not contain the NUL character."
    bad_field = {"instances": [rows(german, 1)[0] | {"evil\u0000": 1}]}
    response = keyed.post(
        "/api/v1/models/credit-risk/predict", data=json.dumps(bad_field), content_type="application/json"
    )
    assert response.status_code == 400
    records = list(PredictionLog.objects.order_by("pk"))
    assert [r.outcome for r in records] == ["invalid", "invalid"]
    assert records[0].request_id == "order\ufffd7"
    assert "evil\ufffd" in records[1].reason and "\x00" not in records[1].reason
    assert records[1].inputs[0]["evil\x00"] == 1  # the inputs keep exactly what was sent, as JSON text


def test_a_remembered_version_is_rechecked_by_the_log_write(
    keyed, production, second_version, data_scientist, risk_officer, german
):
    """The process remembers which version answered, without asking the database again; the
    INSERT that logs each answer re-checks that version, so a retirement or a new deployment
    shows at the next request, and a bad request to a retired version is refused as retired."""
    assert predict(keyed, instances=rows(german, 1)).json()["version"] == production.version  # remembered now
    checked(second_version, data_scientist)
    workflow.approve_version(second_version.pk, actor=risk_officer, justification=OK)
    workflow.deploy_version(second_version.pk, actor=risk_officer, justification="Replace v1.")
    answer = predict(keyed, instances=rows(german, 1)).json()
    assert answer["version"] == second_version.version
    assert PredictionLog.objects.get(public_id=answer["request_id"]).version_id == second_version.pk

    named = predict(keyed, instances=rows(german, 1), version=second_version.version)
    assert named.status_code == 200  # remembered under (model, 2)
    operations.retire_version(second_version.pk, actor=risk_officer, justification="Withdrawn.")
    before = PredictionLog.objects.filter(outcome="ok").count()
    for body in ({"instances": rows(german, 1)}, {"instances": [{"nonsense": 1}]}):
        for version in (None, second_version.version):
            response = predict(keyed, **body, **({"version": version} if version else {}))
            assert response.status_code == 403, response.content
            assert response.json()["error"]["code"] == "version_not_servable"
    assert PredictionLog.objects.filter(outcome="ok").count() == before  # nothing answered, nothing logged as ok
    assert PredictionLog.objects.filter(outcome="refused").count() == 4


def test_a_keyed_answer_refused_at_the_write_leaves_no_record_and_no_index_row(keyed, production, risk_officer, german):
    """On PostgreSQL the record's INSERT writes its business-key index rows in the same
    statement: when the guard finds the version no longer servable, neither is written."""
    from serving.models import PredictionKey

    assert predict(keyed, instances=rows(german, 2), business_keys=["k-1", "k-2"]).status_code == 200  # remembered
    operations.retire_version(production.pk, actor=risk_officer, justification="Withdrawn.")
    response = predict(keyed, instances=rows(german, 2), business_keys=["k-3", "k-4"])
    assert response.status_code == 403, response.content
    assert sorted(PredictionKey.objects.values_list("row", "key")) == [(0, "k-1"), (1, "k-2")]
    assert PredictionLog.objects.filter(outcome="ok").count() == 1


def test_a_remembered_client_key_is_rechecked_by_the_log_write(api_client, production, german):
    """The predict views remember a client key without reading it again; the log INSERT (and
    any refusal) re-checks it, so a key revoked after it answered gets 401 at its very next
    request, with a valid body, a bad one or malformed JSON, on both APIs, and nothing more is
    answered or logged."""
    from serving.services import create_api_key, revoke_api_key

    sends = {
        "v1 valid": lambda: predict(api_client, instances=rows(german, 1)),
        "v1 bad rows": lambda: predict(api_client, instances=[{"nonsense": 1}]),
        "v1 malformed": lambda: api_client.post(
            "/api/v1/models/credit-risk/predict", "{not json", content_type="application/json"
        ),
        "v2 valid": lambda: infer(api_client, rows(german, 1)),
        "v2 bad tensors": lambda: api_client.post(
            "/v2/models/credit-risk/infer", json.dumps({"inputs": [{"name": "age"}]}), content_type="application/json"
        ),
    }
    for case, send in sends.items():
        key, raw = create_api_key(actor=None, name=f"client {case}")
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert predict(api_client, instances=rows(german, 1)).status_code == 200  # the key is remembered now
        revoke_api_key(key.pk, actor=None)
        logged = PredictionLog.objects.count()
        response = send()
        assert response.status_code == 401, (case, response.content)
        assert PredictionLog.objects.count() == logged, case  # refused at the door, as a key never remembered


def test_a_model_that_fails_on_valid_input_is_refused_with_422_after_running_once(
    keyed, data_scientist, risk_officer, german, train_csv, eval_csv, registered_model, monkeypatch
):
    """A category the encoder never saw passes the input schema (a string), but this pipeline's
    encoder refuses unknown categories: a real failure on valid input. It is logged and refused
    with 422, and the model runs once per request, not again for the fresh look-up that confirms
    the version is still servable."""
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from governance.policies import active_policy
    from serving import engine
    from tests.conftest import make_version

    policy = active_policy()
    update_policy(
        policy.pk,
        actor=None,
        justification="Set for this test.",
        changes={"max_fairness_difference": 1.0, "min_fairness_ratio": 0.0},
    )
    features = demo_data.NUMERIC + demo_data.CATEGORICAL
    strict = Pipeline(
        [
            ("prepare", demo_data._preprocessor().set_params(categorical__handle_unknown="error")),
            ("classify", LogisticRegression(max_iter=1000)),
        ]
    ).fit(german[0][features], german[0][demo_data.LABEL])
    version = checked(
        make_version(data_scientist, registered_model, sio.dumps(strict), train_csv, eval_csv), data_scientist
    )
    workflow.approve_version(version.pk, actor=risk_officer, justification=OK, override=True)
    workflow.deploy_version(version.pk, actor=risk_officer, justification="Go live.")
    assert predict(keyed, instances=rows(german, 3)).status_code == 200  # known categories answer

    runs = []
    real_predict = engine.predict

    def counted(*args, **kwargs):
        runs.append(1)
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(engine, "predict", counted)
    unseen = [{**rows(german, 1)[0], "sex": "never-seen"}]
    for request in (1, 2):  # the second request starts from the version this process remembers
        response = predict(keyed, instances=unseen)
        assert response.status_code == 422, response.content
        assert response.json()["error"]["code"] == "prediction_failed"
        assert "predictions" not in response.json()
        assert len(runs) == request  # once per request
    failed = PredictionLog.objects.filter(outcome="error")
    assert failed.count() == 2 and all("prediction_failed" in r.reason and r.version_id == version.pk for r in failed)
    assert failed.first().inputs == unseen
