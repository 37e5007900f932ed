"""The control map: a library kept as YAML, each control proven by named evidence queries (rows
and their content hashes), attested by a risk officer, or missing, as of a date; its PDF is the
same bytes for the same inputs."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from typing import Any

import pytest
import yaml
from django.utils import timezone

from compliance import controls
from compliance.models import ControlAttestation
from core import audit
from core.evidence import evidence
from core.models import AuditEvent
from governance.models import Decision
from tests.serving import conftest as serving

pytestmark = pytest.mark.django_db
production = serving.production  # fixture

REQUIRED = {
    "EU AI Act": {f"Art. {n}" for n in (9, 10, 12, 13, 14, 15, 17, 19, 26, 27, 72, 73)} | {"Art. 11 and Annex IV"},
    "SR 26-2": {"Model inventory", "Model validation", "Governance, policies and controls"},
    "PRA SS1/23": {f"Principle {n}" for n in range(1, 6)},
    "NIST AI RMF": {"Govern", "Map", "Measure", "Manage"},
}


def get_map(client: Any, user: Any, as_of: str = "", name: str = "credit-risk") -> Any:
    client.force_authenticate(user)
    return client.get(f"/api/v1/models/{name}/controls", {"as_of": as_of} if as_of else {})


def test_the_library_is_yaml_data_covering_the_frameworks_and_every_query_exists():
    data = yaml.safe_load(controls.LIBRARY.read_text())
    refs: dict[str, set[str]] = {}
    for c in data["controls"]:
        assert {"id", "source", "reference", "title", "evidence"} <= set(c), c
        assert all(q in controls.EVIDENCE for q in c["evidence"]), c
        refs.setdefault(c["source"], set()).add(c["reference"])
    for source, wanted in REQUIRED.items():
        assert wanted <= refs[source], (source, wanted - refs[source])
    assert len(refs["ISO/IEC 42001"]) >= 4
    assert len({c["id"] for c in data["controls"]}) == len(data["controls"])


def test_controls_are_proven_by_rows_and_hashes_and_missing_before_the_evidence_existed(
    api_client, production, auditor
):
    before = (production.created_at - timedelta(seconds=1)).isoformat()
    early = get_map(api_client, auditor, before).json()
    assert early["counts"]["proven"] == 0
    now = get_map(api_client, auditor).json()
    by_id = {c["id"]: c for c in now["controls"]}
    approval = Decision.objects.get(version=production, kind="approve")
    iso = by_id["ISO42001-A.6.2.4"]
    assert iso["status"] == "proven"
    assert {"query": "approval_decisions", "row": f"governance.decision:{approval.pk}",
            "sha256": evidence(approval)[0]["sha256"]} in iso["evidence"]  # fmt: skip
    assert by_id["SR26-2-VAL"]["status"] == "missing" and by_id["SR26-2-VAL"]["missing_evidence"] == [
        "validation_report"
    ]
    assert by_id["EUAIA-73"]["status"] == "missing"  # no incident registered
    assert [c["id"] for c in now["controls"]] == sorted(by_id)
    assert set(c["status"] for c in now["controls"]) <= {"proven", "attested", "missing"}


def test_a_risk_officer_attests_a_control_audited_and_in_force_from_then(api_client, production, risk_officer, auditor):
    before = timezone.now().isoformat()
    api_client.force_authenticate(auditor)
    url = "/api/v1/models/credit-risk/controls/SR26-2-VAL/attest"
    assert api_client.post(url, {"statement": "x"}, format="json").status_code == 403
    api_client.force_authenticate(risk_officer)
    assert api_client.post(url, {"statement": " "}, format="json").status_code == 400
    unknown = "/api/v1/models/credit-risk/controls/NOPE/attest"
    assert api_client.post(unknown, {"statement": "x"}, format="json").status_code == 404
    statement = "Validated by the model validation unit, report MV-2026-14."
    response = api_client.post(url, {"statement": statement}, format="json")
    assert response.status_code == 201, response.json()
    attestation = ControlAttestation.objects.get()
    event = AuditEvent.objects.get(action=audit.CONTROL_ATTESTED)
    assert event.actor_id == risk_officer.pk and event.data["evidence"] == evidence(attestation)
    now = {c["id"]: c for c in get_map(api_client, auditor).json()["controls"]}
    assert now["SR26-2-VAL"]["status"] == "attested"
    assert now["SR26-2-VAL"]["attestation"]["by"] == risk_officer.username
    then = {c["id"]: c for c in get_map(api_client, auditor, before).json()["controls"]}
    assert then["SR26-2-VAL"]["status"] == "missing"


def test_only_auditors_and_risk_officers_read_and_a_bad_date_is_a_named_400(
    api_client, production, data_scientist, outsider, auditor
):
    for user in (data_scientist, outsider):
        assert get_map(api_client, user).status_code == 403
    bad = get_map(api_client, auditor, "not-a-date")
    assert bad.status_code == 400 and "as_of" in bad.json()["error"]["details"]
    assert get_map(api_client, auditor, name="no-such").status_code == 404


def test_the_control_pdf_is_the_same_bytes_twice_for_the_same_inputs(api_client, production, auditor, tmp_path):
    api_client.force_authenticate(auditor)
    # a moment already past: the downloads' own audit events come after it, so both see the same rows
    as_of = timezone.now().isoformat()
    first = api_client.get("/api/v1/models/credit-risk/controls.pdf", {"as_of": as_of})
    second = api_client.get("/api/v1/models/credit-risk/controls.pdf", {"as_of": as_of})
    assert first.status_code == 200, first.content[:300]
    assert first.content == second.content
    assert first["X-Report-SHA256"] == second["X-Report-SHA256"]
    path = tmp_path / "controls.pdf"
    path.write_bytes(first.content)
    (tmp_path.parent / "last-controls.pdf").write_bytes(first.content)
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    assert "Control map: credit-risk" in text and "EUAIA-12" in text and "proven" in text and "missing" in text


def test_the_control_page_shows_the_map_and_lets_a_risk_officer_attest(client, production, risk_officer, auditor):
    client.force_login(auditor)
    page = client.get("/audit/models/credit-risk/controls/").content.decode()
    assert 'id="control-map"' in page and "EUAIA-73" in page and 'class="attest"' not in page
    client.force_login(risk_officer)
    assert 'class="attest"' in client.get("/audit/models/credit-risk/controls/").content.decode()
    response = client.post(
        "/audit/models/credit-risk/controls/", {"control": "EUAIA-73", "statement": "No serious incident so far."}
    )
    assert response.status_code == 302
    page = client.get("/audit/models/credit-risk/controls/").content.decode()
    assert "No serious incident so far." in page
    assert controls.control_map(production.registered_model, timezone.now())["counts"]["attested"] == 1
