"""The limitations and overlays register: recorded by risk officers through the
API (governed, audited), shown on the decision receipt and the version report while in force, and
an expired one opens a finding (the periodic task)."""

from __future__ import annotations

import io
import subprocess
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from core.models import AuditEvent
from governance import overlays
from governance.models import Finding, Overlay
from governance.tasks import overlay_expiry_task
from tests.serving.conftest import client_key, keyed, production, rows  # noqa: F401
from tests.serving.test_predict import predict

pytestmark = pytest.mark.django_db

ENTRY = {
    "kind": "overlay",
    "owner": "dana",
    "reason": "Applicants from the new northern branch are outside the training population.",
    "adjustment": "Scores of northern-branch applicants are capped at the 'review' band by the loan officer.",
}


def text_of(pdf: bytes) -> str:
    out = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True).stdout
    return " ".join(out.decode().split())


def record(client: APIClient, name: str, **extra: object) -> object:
    expires = (timezone.now() + timedelta(days=90)).isoformat()
    return client.post(f"/api/v1/models/{name}/overlays", {**ENTRY, "expires_at": expires, **extra}, format="json")


def test_risk_officers_record_overlays_audited_and_others_may_not(production, risk_officer, data_scientist):  # noqa: F811
    name = production.registered_model.name
    client = APIClient()
    client.force_authenticate(data_scientist)
    assert record(client, name).status_code == 403
    client.force_authenticate(risk_officer)
    response = record(client, name)
    assert response.status_code == 201, response.content
    overlay = Overlay.objects.get()
    assert response.json()["in_force"] and overlay.owner.username == "dana"
    event = AuditEvent.objects.get(action="governance.overlay.recorded")
    assert event.actor == risk_officer and event.data["evidence"][0]["row"] == f"governance.overlay:{overlay.pk}"
    assert [o["id"] for o in client.get(f"/api/v1/models/{name}/overlays").json()["overlays"]] == [overlay.pk]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"kind": "hunch"}, "kind"),
        ({"owner": "nobody"}, "owner"),
        ({"reason": " "}, "reason"),
        ({"expires_at": "2020-01-01"}, "expires_at"),
        ({"expires_at": "soon"}, "expires_at"),
    ],
)
def test_bad_overlays_are_400_naming_the_field(production, risk_officer, extra, field):  # noqa: F811
    client = APIClient()
    client.force_authenticate(risk_officer)
    response = record(client, production.registered_model.name, **extra)
    assert response.status_code == 400, response.content
    assert field in str(response.json()["error"])
    assert not Overlay.objects.exists()


def test_the_receipt_and_the_report_show_the_overlays_in_force(
    keyed,  # noqa: F811
    production,  # noqa: F811
    german,
    risk_officer,
    auditor,
):
    client = APIClient()
    client.force_authenticate(risk_officer)
    assert record(client, production.registered_model.name).status_code == 201
    pid = predict(keyed, instances=rows(german, 1)).json()["prediction_ids"][0]
    client.force_authenticate(auditor)
    receipt = text_of(client.get(f"/api/v1/predictions/{pid}/receipt.pdf").content)
    assert "Limitations and overlays in force when the decision was made" in receipt
    assert ENTRY["reason"] in receipt and ENTRY["adjustment"] in receipt
    report = client.get(f"/api/v1/models/{production.registered_model.name}/versions/{production.version}/report.pdf")
    text = text_of(report.content)
    assert "Limitations and overlays in force" in text and ENTRY["adjustment"] in text


def test_an_overlay_not_in_force_is_not_on_the_receipt(keyed, production, german, risk_officer, auditor):  # noqa: F811
    client = APIClient()
    client.force_authenticate(risk_officer)
    start = (timezone.now() + timedelta(days=10)).isoformat()
    assert record(client, production.registered_model.name, starts_at=start).status_code == 201
    pid = predict(keyed, instances=rows(german, 1)).json()["prediction_ids"][0]
    client.force_authenticate(auditor)
    receipt = text_of(client.get(f"/api/v1/predictions/{pid}/receipt.pdf").content)
    assert ENTRY["reason"] not in receipt and "None was in force." in receipt


def test_an_expired_overlay_opens_one_finding_and_the_trail_verifies(production, risk_officer, data_scientist):  # noqa: F811
    overlay = overlays.record_overlay(
        production.registered_model_id,
        actor=risk_officer,
        expires_at=timezone.now() + timedelta(days=1),
        **ENTRY,
    )
    assert overlay_expiry_task() == []  # not expired yet
    later = timezone.now() + timedelta(days=2)
    (finding_id,) = overlays.open_expiry_findings(now=later)
    finding = Finding.objects.get(pk=finding_id)
    assert finding.version == production and finding.key == f"overlay:{overlay.pk}" and finding.owner == data_scientist
    assert "expired" in finding.title
    assert overlays.open_expiry_findings(now=later) == []  # once
    overlay.refresh_from_db()
    assert overlay.expiry_finding == finding and not overlay.in_force_at(later)
    assert list(overlays.in_force(production.registered_model_id, at=later)) == []
    call_command("verify_audit", stdout=io.StringIO())
