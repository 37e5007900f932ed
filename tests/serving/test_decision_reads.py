"""One read rule for a decision's data (governance.rules.can_read_decision): the record, its
explanation, its receipt and its reviews are read by auditors, risk officers and the API key that
received it, and so are the personal values they show; a data scientist who may not read the
record gets 403 from its explanation and receipt too, and the service functions refuse as well."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from compliance import receipts
from serving import decisions
from serving.errors import ServingError
from serving.models import Explanation, PredictionLog
from tests.serving.conftest import rows
from tests.serving.test_personal import kek, personal_version  # noqa: F401
from tests.serving.test_predict import predict

pytestmark = pytest.mark.django_db


def person(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.mark.parametrize("path", ["/", "/explanation", "/receipt.pdf", "/review"])
def test_a_data_scientist_gets_403_from_every_view_of_a_decision(
    personal_version,  # noqa: F811
    keyed,
    german,
    data_scientist,
    second_scientist,
    path,
):
    answer = predict(keyed, instances=rows(german, 1), business_keys=["app-1"]).json()
    pid = answer["prediction_ids"][0]
    for user in (data_scientist, second_scientist):
        response = person(user).get(f"/api/v1/predictions/{pid}{path}")
        assert response.status_code == 403, (user.username, path, response.content[:200])
        assert b"app-1" not in response.content and b'"age"' not in response.content
    assert not Explanation.objects.exists()  # nothing was computed for them


def test_the_receiving_key_and_the_second_line_read_every_view(
    personal_version,  # noqa: F811
    keyed,
    german,
    auditor,
    risk_officer,
):
    pid = predict(keyed, instances=rows(german, 1), business_keys=["app-1"]).json()["prediction_ids"][0]
    for client in (keyed, person(auditor), person(risk_officer)):
        for path in ("/", "/explanation", "/review"):
            assert client.get(f"/api/v1/predictions/{pid}{path}").status_code == 200, path
    detail = keyed.get(f"/api/v1/predictions/{pid}/").json()
    assert detail["row_input"]["age"] == rows(german, 1)[0]["age"]  # its own values, as sent


def test_the_service_functions_ask_the_same_rule(personal_version, keyed, german, data_scientist):  # noqa: F811
    pid = predict(keyed, instances=rows(german, 1), business_keys=["app-1"]).json()["prediction_ids"][0]
    record = PredictionLog.objects.get(public_id=pid.split(".")[0])
    with pytest.raises(ServingError) as refused:
        decisions.explanation_of(record, 0, actor=data_scientist)
    assert refused.value.status == 403
    with pytest.raises(ServingError):
        receipts.generate_receipt(record, 0, actor=data_scientist)
