"""Serious incidents (EU AI Act art. 73): the deadline per severity, the evidence freeze, the
register, the reminder and the report for the authority."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from compliance import incidents
from compliance.models import Incident
from core import audit
from core.evidence import evidence
from core.models import AuditEvent
from tests.serving import conftest as serving
from tests.serving.conftest import rows
from tests.serving.test_predict import predict

pytestmark = pytest.mark.django_db
client_key, keyed, production = serving.client_key, serving.keyed, serving.production  # fixtures


@pytest.fixture(autouse=True)
def checkpoint_keys(settings: Any) -> None:
    settings.CHECKPOINT_SIGNING_KEY = hashlib.sha256(b"incident test key").hexdigest()
    settings.CHECKPOINT_WITNESS_KEY = hashlib.sha256(b"incident test witness").hexdigest()


def register(client: Any, user: Any, **body: Any) -> Any:
    client.force_authenticate(user)
    payload = {
        "model": "credit-risk",
        "severity": "serious",
        "aware_at": "2026-03-03T09:30:00Z",
        "summary": "Applicants over 70 refused credit.",
    }
    payload.update(body)
    return client.post("/api/v1/incidents", json.dumps(payload), content_type="application/json")


@pytest.mark.parametrize(("severity", "days"), [("serious", 15), ("death", 10), ("widespread", 2)])
def test_the_report_is_due_15_10_or_2_days_after_awareness(api_client, production, risk_officer, severity, days):
    response = register(api_client, risk_officer, severity=severity)
    assert response.status_code == 201, response.json()
    body = response.json()
    aware = datetime.fromisoformat("2026-03-03T09:30:00+00:00")
    assert datetime.fromisoformat(body["report_due"].replace("Z", "+00:00")) == aware + timedelta(days=days)
    assert body["checkpoint"].startswith("modelgov") or "audit-chain" in body["checkpoint"]
    incident = Incident.objects.get(public_id=body["id"])
    assert incident.report_due - incident.aware_at == timedelta(days=days)
    event = AuditEvent.objects.get(action=audit.INCIDENT_REGISTERED)
    assert event.actor_id == risk_officer.pk and event.data["evidence"] == evidence(incident)
    assert event.data["checkpoint_seq"] == incident.checkpoint_seq == event.seq - 1  # frozen just before


def test_the_frozen_checkpoint_verifies_and_a_changed_note_or_rewritten_chain_does_not(
    api_client, production, risk_officer, auditor
):
    body = register(api_client, risk_officer, aware_at=timezone.now().isoformat()).json()
    api_client.force_authenticate(auditor)
    detail = api_client.get(f"/api/v1/incidents/{body['id']}").json()
    assert detail["checkpoint_verification"]["ok"] is True, detail
    assert "audit-chain" in detail["checkpoint"] and detail["version"] == 1
    incident = Incident.objects.get(public_id=body["id"])
    assert incidents.verify_freeze(incident).ok
    forged = Incident.objects.get(pk=incident.pk)
    forged.checkpoint = forged.checkpoint.replace("audit-chain ", "audit-chain 9", 1)
    assert not incidents.verify_freeze(forged).ok
    # someone with database access rewrites the event the checkpoint signed
    from tests.compliance.test_checkpoints import rewrite_chain_from

    rewrite_chain_from(incident.checkpoint_seq, {"rewritten": True})
    result = incidents.verify_freeze(incident)
    assert not result.ok and f"#{incident.checkpoint_seq}" in result.message


def test_decisions_concerned_are_linked_and_must_be_logged_decisions_of_the_model(
    api_client, keyed, production, risk_officer, german
):
    ids = predict(keyed, instances=rows(german, 2)).json()["prediction_ids"]
    body = register(api_client, risk_officer, prediction_ids=ids).json()
    assert body["prediction_ids"] == sorted(ids)
    bad = register(api_client, risk_officer, prediction_ids=[ids[0].split(".")[0] + ".7"])
    assert bad.status_code == 400 and "prediction_ids" in bad.json()["error"]["details"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"model": "nope"}, "model"),
        ({"severity": "minor"}, "severity"),
        ({"aware_at": "soon"}, "aware_at"),
        ({"aware_at": "2999-01-01T00:00:00Z"}, "aware_at"),
        ({"summary": " "}, "summary"),
        ({"prediction_ids": "abc"}, "prediction_ids"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api_client, production, risk_officer, change, field):
    response = register(api_client, risk_officer, **change)
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["details"]
    assert not Incident.objects.exists()


def test_only_risk_officers_register_and_only_auditors_and_officers_read(
    api_client, production, data_scientist, auditor, outsider, risk_officer
):
    for user in (data_scientist, auditor, outsider):
        assert register(api_client, user).status_code == 403
    body = register(api_client, risk_officer).json()
    for user in (data_scientist, outsider):
        api_client.force_authenticate(user)
        assert api_client.get(f"/api/v1/incidents/{body['id']}").status_code == 403
    api_client.force_authenticate(auditor)
    assert api_client.get("/api/v1/incidents/not-an-id").status_code == 404
    assert [i["id"] for i in api_client.get("/api/v1/incidents").json()["incidents"]] == [body["id"]]


def test_the_register_page_lists_incidents_and_a_risk_officer_registers_from_it(
    client, production, risk_officer, auditor
):
    client.force_login(risk_officer)
    page = client.post(
        "/audit/incidents/",
        {"model": "credit-risk", "severity": "death", "aware_at": "2026-03-03T09:30", "summary": "A patient died."},
    )
    assert page.status_code == 302
    incident = Incident.objects.get()
    assert incident.report_due == datetime.fromisoformat("2026-03-13T09:30:00+00:00")
    client.force_login(auditor)
    listing = client.get("/audit/incidents/").content.decode()
    assert "credit-risk" in listing and "2026-03-13 09:30" in listing and "register-incident" not in listing
    detail = client.get(f"/audit/incidents/{incident.public_id}/").content.decode()
    assert "A patient died." in detail and "verifies" in detail


def test_risk_officers_are_reminded_once_when_a_report_is_due_soon(
    api_client, production, risk_officer, settings, django_capture_on_commit_callbacks
):
    settings.INCIDENT_REMIND_BEFORE_HOURS = 48
    risk_officer.email = "officer@example.com"
    risk_officer.save()
    soon = (timezone.now() - timedelta(days=1)).isoformat()
    later = (timezone.now() - timedelta(hours=1)).isoformat()
    due_soon = register(api_client, risk_officer, severity="widespread", aware_at=soon).json()
    register(api_client, risk_officer, severity="serious", aware_at=later)  # due in about 15 days
    from compliance.tasks import remind_incidents_task

    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        sent = remind_incidents_task()
    assert sent == [Incident.objects.get(public_id=due_soon["id"]).pk]
    assert len(mail.outbox) == 1 and "officer@example.com" in mail.outbox[0].to
    assert "art. 73 report is due" in mail.outbox[0].subject
    assert remind_incidents_task() == []  # once
    assert AuditEvent.objects.filter(action=audit.INCIDENT_REMINDED).count() == 1


def test_the_report_for_the_authority_renders_the_same_bytes_twice(api_client, production, risk_officer, tmp_path):
    body = register(api_client, risk_officer, corrective_actions="Model stopped; fallback v1 answers.").json()
    first = api_client.get(f"/api/v1/incidents/{body['id']}/report.pdf")
    time.sleep(1.1)  # the clock moves between the two renders
    second = api_client.get(f"/api/v1/incidents/{body['id']}/report.pdf")
    assert first.status_code == 200 and first["Content-Type"] == "application/pdf"
    assert first.content == second.content
    path = tmp_path / "incident.pdf"
    path.write_bytes(first.content)
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    for field in (
        "Provider",
        "credit-risk",
        "Date of awareness",
        "Reporting deadline",
        "2026-03-18 09:30:00",
        "Corrective actions",
        "fallback v1 answers",
        "Decisions concerned",
        "Evidence freeze",
        "VERIFIES",
    ):
        assert field in text, field
