"""Edges found by trying the service as an attacker would ."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from compliance.exports import neutralise
from serving.models import PredictionLog
from serving.services import create_api_key
from tests.factories import UserFactory
from tests.serving.conftest import rows

pytestmark = pytest.mark.django_db


def test_a_key_bound_to_a_user_with_no_role_may_not_predict(production, api_client, german):
    UserFactory(username="former-employee")  # no role
    key = create_api_key(actor=None, name="left-behind", username="former-employee")[1]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    url = f"/api/v1/models/{production.registered_model.name}/predict"
    response = api_client.post(url, {"instances": rows(german, 1)}, format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert PredictionLog.objects.filter(outcome="refused", caller="api-key:left-behind").count() == 1
    assert not PredictionLog.objects.filter(outcome="ok").exists()


def test_readiness_tells_anonymous_callers_nothing_about_the_database(client, monkeypatch):
    from serving import v2

    def unreachable() -> None:
        raise OperationalError('connection to server at "10.1.2.3", port 5432 failed: timeout')

    monkeypatch.setattr(v2.connection, "cursor", unreachable)
    response = client.get("/v2/health/ready")
    assert response.status_code == 503
    assert response.json() == {"ready": False, "error": "database unavailable"}
    assert "10.1.2.3" not in response.content.decode() and "5432" not in response.content.decode()


@pytest.mark.parametrize("text", [" =1+1", "\xa0=2+2", "\u3000@SUM(A1)", "=1+1", "\t=1"])
def test_csv_cells_that_start_like_a_formula_after_whitespace_are_neutralised(text):
    assert neutralise(text) == "'" + text


@pytest.mark.parametrize("text", ["plain", "1+1", " a=b", "-"])
def test_csv_cells_that_do_not_start_like_a_formula_are_left_alone(text):
    expected = "'" + text if text == "-" else text
    assert neutralise(text) == expected


def test_v2_outputs_that_are_not_a_list_are_a_logged_400_before_anything_is_predicted(production, keyed, german):
    row = rows(german, 1)[0]
    dtypes = {c["name"]: c["dtype"] for c in production.input_schema}
    kinds = {"float64": "FP64", "int64": "INT64", "string": "BYTES", "bool": "BOOL"}
    inputs = [{"name": n, "datatype": kinds[dtypes[n]], "shape": [1], "data": [v]} for n, v in row.items()]
    url = f"/v2/models/{production.registered_model.name}/infer"
    response = keyed.post(url, {"inputs": inputs, "outputs": 5}, format="json")
    assert response.status_code == 400 and '"outputs" must be a list' in response.json()["error"]
    assert not PredictionLog.objects.filter(outcome="ok").exists()
    assert PredictionLog.objects.filter(outcome="invalid", protocol="v2").count() == 1


@pytest.mark.parametrize(
    "body, reason",
    [
        (b'{"instances": ' + b"[" * 2000 + b"]" * 2000 + b"}", "nested too deeply"),
        (b'{"instances": [{"age": "\\ud800"}]}', "lone UTF-16 surrogate"),
    ],
    ids=["nested-2000-deep", "lone-surrogate"],
)
def test_hostile_json_is_a_logged_400_never_a_500(production, keyed, body, reason):
    url = f"/api/v1/models/{production.registered_model.name}/predict"
    response = keyed.generic("POST", url, body, content_type="application/json")
    assert response.status_code == 400 and reason in response.json()["error"]["message"]
    assert PredictionLog.objects.filter(outcome="invalid").count() == 1
    v2 = keyed.generic(
        "POST", f"/v2/models/{production.registered_model.name}/infer", body, content_type="application/json"
    )
    assert v2.status_code == 400 and reason in v2.json()["error"]
    assert PredictionLog.objects.filter(outcome="invalid").count() == 2
