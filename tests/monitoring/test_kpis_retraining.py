"""KPIs and retraining: KPI definitions computed from the logged decisions and
their outcomes, a breach opening a finding (once), a retraining request from it assigned to the
owner, closed by the next version that names it (shown in its record)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from core.models import AuditEvent
from governance.models import Finding, RetrainingRequest
from monitoring import kpis
from monitoring.tasks import kpi_check_task
from tests.conftest import make_version
from tests.serving.conftest import client_key, keyed, production, rows  # noqa: F401
from tests.serving.test_predict import predict

pytestmark = pytest.mark.django_db


@pytest.fixture
def decided(keyed, production, german):  # noqa: F811
    """20 decisions of the production version, with their outcomes: every applicant defaulted."""
    body = predict(keyed, instances=rows(german, 20)).json()
    for pid in body["prediction_ids"]:
        unfavourable = next(c for c in production.classes if c != production.favourable)
        assert (
            keyed.post(f"/api/v1/predictions/{pid}/outcome", {"actual": unfavourable}, format="json").status_code == 201
        )
    return body["predictions"]


def define(client: APIClient, **fields: Any) -> Any:
    return client.post("/api/v1/models/credit-risk/kpis", fields, format="json")


def test_kpis_are_computed_from_decisions_and_outcomes(decided, production, risk_officer):  # noqa: F811
    client = APIClient()
    client.force_authenticate(risk_officer)
    good = production.favourable
    assert define(client, name="approvals", metric="approval_rate", favourable=good, min_value=0.0).status_code == 201
    assert (
        define(
            client, name="defaults", metric="default_rate_among_approved", favourable=good, max_value=0.5, min_rows=1
        ).status_code
        == 201
    )
    values = {k["name"]: k for k in client.get("/api/v1/models/credit-risk/kpis").json()["kpis"]}
    approved = sum(1 for d in decided if d == good)
    assert values["approvals"]["rows"] == 20 and values["approvals"]["value"] == pytest.approx(approved / 20)
    assert values["defaults"]["rows"] == approved and values["defaults"]["value"] == pytest.approx(1.0)
    assert values["defaults"]["breach"].startswith("defaults 1.0000 > 0.5") and values["approvals"]["breach"] == ""


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "x", "metric": "profit", "favourable": 1, "min_value": 0.1}, "metric"),
        ({"name": "x", "metric": "approval_rate", "favourable": 1}, "min_value"),
        ({"name": "x", "metric": "approval_rate", "favourable": 1, "max_value": 7}, "max_value"),
        ({"name": "x", "metric": "approval_rate", "min_value": 0.1}, "favourable"),
    ],
)
def test_bad_kpis_are_400_naming_the_field(production, risk_officer, fields, field):  # noqa: F811
    client = APIClient()
    client.force_authenticate(risk_officer)
    response = define(client, **fields)
    assert response.status_code == 400 and field in str(response.json()["error"]), response.content


def test_only_risk_officers_define_kpis(production, data_scientist):  # noqa: F811
    client = APIClient()
    client.force_authenticate(data_scientist)
    assert define(client, name="x", metric="approval_rate", favourable=1, min_value=0.1).status_code == 403


def test_a_kpi_breach_opens_a_finding_then_a_retraining_request_closed_by_the_next_version(
    decided,
    production,  # noqa: F811
    risk_officer,
    data_scientist,
    skops_bytes,
    train_csv,
    eval_csv,  # noqa: F811
):
    client = APIClient()
    client.force_authenticate(risk_officer)
    good = production.favourable
    define(client, name="defaults", metric="default_rate_among_approved", favourable=good, max_value=0.2, min_rows=5)
    (finding_id,) = kpi_check_task()
    finding = Finding.objects.get(pk=finding_id)
    assert finding.version == production and finding.key == "kpi:defaults" and finding.owner == data_scientist
    assert finding.is_open and "KPI breached" in finding.title
    assert kpis.check_kpis() == [finding_id]  # the same open finding, not a second one
    assert Finding.objects.filter(key="kpi:defaults").count() == 1

    # a risk officer asks the owner to retrain
    client.force_authenticate(data_scientist)
    assert client.post(f"/api/v1/findings/{finding_id}/retraining", {"reason": "x"}, format="json").status_code == 403
    client.force_authenticate(risk_officer)
    response = client.post(
        f"/api/v1/findings/{finding_id}/retraining", {"reason": "Defaults among approved too high."}, format="json"
    )
    assert response.status_code == 201, response.content
    request_id = response.json()["id"]
    assert response.json()["owner"] == data_scientist.username and response.json()["answered_by"] is None

    # the owner answers with a new version that names it; the production version cannot
    client.force_authenticate(data_scientist)
    url = "/api/v1/models/credit-risk/versions/{}/retraining"
    refused = client.post(url.format(production.version), {"request": request_id}, format="json")
    assert refused.status_code == 409 and "newer" in refused.json()["error"]["message"]
    v2 = make_version(
        data_scientist,
        production.registered_model,
        skops_bytes,
        train_csv,
        eval_csv,
        parent_version=production.version,
    )
    answered = client.post(url.format(v2.version), {"request": request_id}, format="json")
    assert answered.status_code == 200, answered.content
    request = RetrainingRequest.objects.get(pk=request_id)
    assert request.answered_by == v2 and not request.is_open
    again = client.post(url.format(v2.version), {"request": request_id}, format="json")
    assert again.status_code == 409
    record = client.get(f"/api/v1/models/credit-risk/versions/{v2.version}/").json()
    assert record["answers_retraining_requests"] == [request_id]
    assert AuditEvent.objects.filter(action="governance.retraining.answered", actor=data_scientist).count() == 1
    call_command("verify_audit", stdout=io.StringIO())
