"""The model inventory: kinds, purpose, materiality and the tier it proposes,
dependencies; vendor models never served, their decisions logged and their outcomes reported by
the client's own key, live performance from them; the inventory page and its CSV export."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.core.management import call_command

from core.models import AuditEvent
from lifecycle.materiality import proposed_tier
from lifecycle.models import ModelDependency, RegisteredModel
from serving.models import PredictionLog
from serving.seals import seal_predictions
from serving.services import create_api_key
from tests.conftest import make_version

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("inputs", "tier"),
    [
        ({}, None),
        ({"exposure": 999_999}, "low"),
        ({"exposure": 1_000_000}, "medium"),
        ({"exposure": 10_000_000}, "high"),
        ({"decisions_per_year": 99_999, "affected_people": 9_999}, "low"),
        ({"decisions_per_year": 100_000}, "medium"),
        ({"exposure": 5, "decisions_per_year": 5, "affected_people": 100_000}, "high"),
        ({"affected_people": 10_000, "exposure": 0}, "medium"),
    ],
)
def test_the_materiality_proposes_a_tier(inputs: dict[str, int], tier: str | None) -> None:
    given = {"exposure": None, "decisions_per_year": None, "affected_people": None, **inputs}
    assert proposed_tier(**given) == tier


def register(api_client: Any, **fields: Any) -> Any:
    return api_client.post("/api/v1/models/", {"title": "A model", **fields}, format="json")


def test_a_vendor_model_is_registered_with_its_inventory_entry(api_client, data_scientist, registered_model):
    api_client.force_authenticate(data_scientist)
    response = register(
        api_client,
        name="bureau-score",
        kind="vendor",
        purpose="Credit bureau score used as an input of credit-risk.",
        exposure=2_000_000,
        decisions_per_year=50_000,
        affected_people=120_000,
        depends_on=[],
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["kind"] == "vendor" and body["risk_tier"] == "high"  # proposed from the materiality
    assert body["materiality"] == {
        "exposure": 2_000_000,
        "decisions_per_year": 50_000,
        "affected_people": 120_000,
        "proposed_tier": "high",
    }
    # credit-risk depends on the vendor score: registered with its dependency
    response = register(api_client, name="credit-limits", risk_tier="low", depends_on=["bureau-score", "credit-risk"])
    assert response.status_code == 201, response.content
    assert response.json()["depends_on"] == ["bureau-score", "credit-risk"]
    limits = RegisteredModel.objects.get(name="credit-limits")
    assert sorted(ModelDependency.objects.filter(model=limits).values_list("depends_on__name", flat=True)) == [
        "bureau-score",
        "credit-risk",
    ]
    event = AuditEvent.objects.filter(action="lifecycle.model.registered", target_id=str(limits.pk)).get()
    assert event.data["depends_on"] == ["bureau-score", "credit-risk"] and len(event.data["evidence"]) == 3
    assert api_client.get("/api/v1/models/bureau-score/").json()["used_by"] == ["credit-limits"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "x-model", "kind": "rented"}, "kind"),
        ({"name": "x-model", "risk_tier": "low", "depends_on": ["nowhere"]}, "depends_on"),
        ({"name": "x-model"}, "risk_tier"),  # neither a tier nor materiality
        ({"name": "x-model", "exposure": -1}, "exposure"),
    ],
)
def test_bad_inventory_entries_are_400_naming_the_field(api_client, data_scientist, fields, field):
    api_client.force_authenticate(data_scientist)
    response = register(api_client, **fields)
    assert response.status_code == 400, response.content
    assert field in str(response.json()["error"]), response.json()
    assert not RegisteredModel.objects.filter(name="x-model").exists()


@pytest.fixture
def vendor(api_client, data_scientist) -> RegisteredModel:
    api_client.force_authenticate(data_scientist)
    assert register(api_client, name="bureau-score", kind="vendor", risk_tier="medium").status_code == 201
    api_client.force_authenticate(None)
    return RegisteredModel.objects.get(name="bureau-score")


def test_a_vendor_model_has_no_artifact_and_is_never_served(
    vendor, api_client, data_scientist, skops_bytes, train_csv, eval_csv
):
    from lifecycle.errors import LifecycleError

    with pytest.raises(LifecycleError, match="no artifact here and is never served"):
        make_version(data_scientist, vendor, skops_bytes, train_csv, eval_csv)
    key = create_api_key(actor=None, name="bank-frontend")[1]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = api_client.post("/api/v1/models/bureau-score/predict", {"instances": [{"a": 1}]}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "model_not_served"
    assert "never served" in response.json()["error"]["message"]
    v2 = api_client.get("/v2/models/bureau-score")
    assert v2.status_code == 403 and "never served" in v2.json()["error"]


def test_vendor_decisions_are_logged_their_outcomes_reported_and_live_performance_computed(
    vendor, api_client, risk_officer
):
    key = create_api_key(actor=None, name="bank-frontend")[1]
    other = create_api_key(actor=None, name="someone-else")[1]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    decisions = ["good", "bad", "good", "good"]
    response = api_client.post(
        "/api/v1/models/bureau-score/decisions",
        {
            "instances": [{"income": 30_000 + i, "region": "north"} for i in range(4)],
            "decisions": decisions,
            "classes": ["bad", "good"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    ids = response.json()["prediction_ids"]
    assert len(ids) == 4
    record = PredictionLog.objects.get()
    assert record.source == "external" and record.version is None and record.model_name == "bureau-score"
    # outcomes from the key that logged them; another key may not
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {other}")
    assert (
        api_client.post(f"/api/v1/predictions/{ids[0]}/outcome", {"actual": "good"}, format="json").status_code == 403
    )
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    for pid, actual in zip(ids, ["good", "good", "good", "bad"], strict=True):
        answer = api_client.post(f"/api/v1/predictions/{pid}/outcome", {"actual": actual}, format="json")
        assert answer.status_code == 201, answer.content
    bad = api_client.post(f"/api/v1/predictions/{ids[0]}/outcome", {"actual": "maybe"}, format="json")
    assert bad.status_code in (400, 409)
    api_client.credentials()
    api_client.force_authenticate(risk_officer)
    live = api_client.get("/api/v1/models/bureau-score/performance").json()
    assert live["decisions"] == 4 and live["performance"]["n_outcomes"] == 4
    assert live["performance"]["metrics"]["accuracy"] == pytest.approx(0.5)
    # sealed like any answer, and the trail verifies
    assert seal_predictions() is not None
    call_command("verify_audit", stdout=io.StringIO())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"instances": [{"a": 1}], "decisions": []}, "decisions"),
        ({"instances": [], "decisions": []}, "instances"),
        ({"instances": [{"a": 1}], "decisions": ["x"], "classes": ["a", "b"]}, "decisions"),
        ({"instances": [{"a": [1]}], "decisions": ["x"]}, "instances"),
        ({"instances": [{"a": 2**70}], "decisions": ["x"]}, "instances"),
        ({"instances": [{"a": 1}], "decisions": [None]}, "decisions"),
    ],
)
def test_bad_decisions_are_400_naming_the_field(vendor, api_client, body, field):
    key = create_api_key(actor=None, name="bank-frontend")[1]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = api_client.post("/api/v1/models/bureau-score/decisions", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["details"]["field"] == field
    assert not PredictionLog.objects.exists()


def test_an_in_house_model_logs_no_external_decisions(registered_model, api_client):
    key = create_api_key(actor=None, name="bank-frontend")[1]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    body = {"instances": [{"a": 1}], "decisions": [1]}
    response = api_client.post(f"/api/v1/models/{registered_model.name}/decisions", body, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "model_served_here"


def test_the_inventory_page_and_csv_for_auditors_and_risk_officers(client, vendor, auditor, data_scientist):
    RegisteredModel.objects.filter(pk=vendor.pk).update(purpose="=HYPERLINK(1)", exposure=20_000_000)
    client.force_login(auditor)
    page = client.get("/audit/inventory/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="inventory-bureau-score"' in html and "vendor" in html and "not served here" in html
    exported = client.get("/audit/inventory.csv")
    assert exported.status_code == 200 and exported["Content-Type"] == "text/csv"
    (row,) = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert row["name"] == "bureau-score" and row["kind"] == "vendor" and row["materiality_tier"] == "high"
    assert row["purpose"] == "'=HYPERLINK(1)"  # never a formula in a spreadsheet
    client.logout()
    client.force_login(data_scientist)
    assert client.get("/audit/inventory/").status_code == 403
    assert client.get("/audit/inventory.csv").status_code == 403
