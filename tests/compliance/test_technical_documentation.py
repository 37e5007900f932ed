"""The EU AI Act Annex IV technical documentation of a version: the nine sections, filled from the
records, read back with poppler's pdftotext; the evidence attached; who may download it."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
from datetime import timedelta
from typing import Any

from django.utils import timezone
from pypdf import PdfReader

from core import audit
from core.models import AuditEvent
from governance import operations
from governance.findings import open_finding
from governance.policies import active_policy
from monitoring import selectors as monitoring_selectors
from monitoring import services as monitoring_services
from serving.seals import seal_predictions
from serving.services import create_api_key
from tests.governance.conftest import LONG_JUSTIFICATION
from tests.serving.conftest import rows

SECTIONS = (
    "1. General description of the AI system",
    "2. Detailed description of the elements of the AI system and of the process for its development",
    "3. Monitoring, functioning and control of the AI system",
    "4. Appropriateness of the performance metrics",
    "5. Risk management system (Article 9)",
    "6. Changes through the lifecycle",
    "7. Harmonised standards and other specifications applied",
    "8. EU declaration of conformity (Article 47)",
    "9. Post-market monitoring plan (Article 72)",
)


def poppler_text(pdf: bytes) -> str:
    out = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True).stdout
    return " ".join(out.decode().split())


def url(version: Any) -> str:
    return f"/api/v1/models/{version.registered_model.name}/versions/{version.version}/technical-documentation.pdf"


def test_auditor_gets_the_nine_annex_iv_sections_filled_from_the_records(
    served, auditor, risk_officer, data_scientist, api_client
) -> None:
    open_finding(
        version_id=served.pk, key="manual:threshold", severity="medium", title="Cut-off not reviewed since launch"
    )
    api_client.force_authenticate(auditor)
    response = api_client.get(url(served))
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "application/pdf"
    pdf = response.content
    sha = hashlib.sha256(pdf).hexdigest()
    assert response["X-Report-SHA256"] == sha
    assert 'filename="credit-risk-v1-technical-documentation.pdf"' in response["Content-Disposition"]

    text = poppler_text(pdf)
    for heading in SECTIONS:
        assert heading in text, heading
    # real values, not placeholders
    assert served.artifact_sha256 in text.replace(" ", "")
    for dataset in (served.training_dataset, served.evaluation_dataset):
        assert dataset.sha256 in text.replace(" ", "")
    assert risk_officer.username in text
    assert " ".join(LONG_JUSTIFICATION.split()) in text
    assert data_scientist.username in text
    assert "https://git.example.org/credit/scoring" in text and "3f2c9a1" in text
    policy = active_policy()
    assert f"≥ {policy.min_accuracy}" in text  # a validation threshold beside its metric
    assert f"≥ {policy.psi_alert} alerts" in text  # the post-market plan's drift threshold
    assert f"every {policy.recertify_after_days('medium')} days for tier medium" in text
    assert "Cut-off not reviewed since launch" in text
    assert "No harmonised standard has been applied." in text
    # what the product does not hold is marked, not invented
    assert "TO BE COMPLETED BY THE PROVIDER" in text.upper()
    assert "not recorded (the version was uploaded, not imported from MLflow)" in text
    assert "not recorded: not recertified yet" in text

    # the evidence attached is the version's record exactly as the API gives it, plus the sections
    attached = PdfReader(io.BytesIO(pdf)).attachments["evidence.json"][0]
    evidence = json.loads(attached)
    assert evidence["report"]["kind"] == "technical_documentation"
    assert evidence["version"] == api_client.get(f"/api/v1/models/credit-risk/versions/{served.version}/").json()
    annex = evidence["annex_iv"]
    assert annex["elements"]["training_dataset"]["sha256"] == served.training_dataset.sha256
    assert [a["by"] for a in annex["oversight"]["approvals"]] == [risk_officer.username]
    assert annex["post_market"]["psi_alert"] == policy.psi_alert
    assert [f["title"] for f in annex["risk"]["open_findings"]] == ["Cut-off not reviewed since launch"]
    assert annex["elements"]["mlflow"] is None

    # each download is in the trail, with the SHA-256 of the bytes handed out
    event = AuditEvent.objects.filter(action=audit.REPORT_GENERATED).latest("seq")
    assert event.actor_username == auditor.username
    assert event.data["kind"] == "technical_documentation"
    assert event.data["sha256"] == sha
    assert event.data["evidence_sha256"] == hashlib.sha256(attached).hexdigest()
    assert event.target_id == str(served.pk)


def test_risk_officer_gets_it_too(served, risk_officer, api_client) -> None:
    api_client.force_authenticate(risk_officer)
    response = api_client.get(url(served))
    assert response.status_code == 200
    assert response.content.startswith(b"%PDF-")


def test_outsider_and_data_scientist_are_refused_and_nothing_is_recorded(
    served, outsider, data_scientist, api_client
) -> None:
    before = AuditEvent.objects.filter(action=audit.REPORT_GENERATED).count()
    for person in (outsider, data_scientist):
        api_client.force_authenticate(person)
        response = api_client.get(url(served))
        assert response.status_code == 403, person.username
        assert response.json()["error"]["code"]
    api_client.force_authenticate(None)
    assert api_client.get(url(served)).status_code in (401, 403)
    assert AuditEvent.objects.filter(action=audit.REPORT_GENERATED).count() == before


def test_unknown_version_or_model_is_404(served, auditor, api_client) -> None:
    api_client.force_authenticate(auditor)
    assert api_client.get("/api/v1/models/credit-risk/versions/99/technical-documentation.pdf").status_code == 404
    assert api_client.get("/api/v1/models/no-such/versions/1/technical-documentation.pdf").status_code == 404


def test_draft_marks_what_is_not_recorded(draft_version, auditor, api_client) -> None:
    api_client.force_authenticate(auditor)
    response = api_client.get(url(draft_version))
    assert response.status_code == 200
    text = poppler_text(response.content)
    for heading in SECTIONS:
        assert heading in text, heading
    assert "Not recorded: no risk officer has approved this version." in text
    assert "not recorded: never deployed" in text
    assert "not recorded: no monitoring window computed yet" in text


def test_the_auditor_page_and_the_review_page_link_to_it(served, auditor, risk_officer, client) -> None:
    client.force_login(auditor)
    page = client.get(f"/audit/models/credit-risk/versions/{served.version}/").content.decode()
    assert url(served) in page
    client.force_login(risk_officer)
    review = client.get(f"/admin/governance/versionreview/{served.pk}/change/")
    assert url(served) in review.content.decode()


def test_post_market_section_reports_windows_findings_reviews_and_recertifications(
    served, auditor, risk_officer, api_client, german, settings
) -> None:
    from governance.policies import active_policy, update_policy

    update_policy(active_policy().pk, actor=None, changes={"monitor_min_rows": 50}, justification="Test setting.")
    key = create_api_key(actor=None, name="drifting")[1]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    shifted = [{**row, "credit_amount": row["credit_amount"] * 3} for row in rows(german, 150)]
    answer = api_client.post("/api/v1/models/credit-risk/predict", {"instances": shifted}, format="json").json()
    review = api_client.post(
        f"/api/v1/predictions/{answer['prediction_ids'][0]}/review",
        {"action": "overridden", "final_decision": 0, "justification": "Income proof checked by hand."},
        format="json",
    )
    assert review.status_code == 201, review.content
    api_client.credentials()
    seal_predictions()
    now = timezone.now()
    window = monitoring_services.store_window(served.pk, start=now - timedelta(hours=2), end=now + timedelta(hours=2))
    assert window.level == "alert"
    snapshot = monitoring_selectors.recertification_snapshot(served)
    operations.recertify_version(served.pk, actor=risk_officer, justification="Drift explained.", snapshot=snapshot)

    api_client.force_authenticate(auditor)
    response = api_client.get(url(served))
    assert response.status_code == 200
    text = poppler_text(response.content)
    evidence = json.loads(PdfReader(io.BytesIO(response.content)).attachments["evidence.json"][0])
    post_market = evidence["annex_iv"]["post_market"]
    assert post_market["windows_stored"] == 1 and post_market["windows_by_level"] == {"alert": 1}
    assert "1 (alert 1)" in text
    assert "credit_amount" in text
    recertification = evidence["annex_iv"]["changes"]["recertifications"][0]
    assert recertification["snapshot_sha256"] in text.replace(" ", "")
    assert "Income proof checked by hand." in text
    assert "1 confirmed" not in text and "0 confirmed, 1 overridden" in text
    assert "governance.version.recertified" in text
