"""An auditor in a real browser, as a new user would go: find a model, open its lineage graph,
look at the prediction log, verify the audit trail, download the compliance report."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from pypdf import PdfReader

from core import audit
from core.models import AuditEvent
from governance import workflow
from governance.policies import active_policy, update_policy
from serving.predict import Caller, PredictionRequest, predict
from serving.seals import seal_predictions
from tests.conftest import make_version
from tests.e2e.test_data_scientist import log_in
from tests.factories import RegisteredModelFactory
from tests.serving.conftest import checked, rows

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_auditor_finds_a_model_checks_lineage_verifies_and_downloads_the_report(
    page: Page,
    live_server: Any,
    data_scientist: Any,
    risk_officer: Any,
    auditor: Any,
    german: Any,
    skops_bytes: bytes,
    train_csv: bytes,
    eval_csv: bytes,
    screenshots: Path,
    tmp_path: Path,
) -> None:
    update_policy(
        active_policy().pk,
        actor=None,
        justification="Set for this test.",
        changes={"max_fairness_difference": 1.0, "min_fairness_ratio": 0.0},
    )
    model = RegisteredModelFactory(name="mortgage-pd", title="Mortgage default", owner=data_scientist)
    first = checked(make_version(data_scientist, model, skops_bytes, train_csv, eval_csv), data_scientist)
    workflow.approve_version(first.pk, actor=risk_officer, justification="Meets the credit policy.")
    workflow.deploy_version(first.pk, actor=risk_officer, justification="Go live.")
    make_version(data_scientist, model, skops_bytes, train_csv, eval_csv, parent_version=first.version)
    for i in range(3):
        caller = Caller(user=risk_officer, api_key=None)
        predict(PredictionRequest(caller, model.name, "v1", request_id=f"loan-{i}", instances=rows(german, 2)))
    seal_predictions()
    base = live_server.url

    log_in(page, base, auditor)
    page.get_by_role("link", name="Audit", exact=True).click()
    page.fill("#q", "mortgage")
    page.get_by_role("button", name="Search").click()
    page.screenshot(path=str(screenshots / "20-audit-home.png"), full_page=True)
    page.get_by_role("link", name="mortgage-pd").click()

    graph = page.locator("#lineage-graph svg.lineage-graph")
    expect(graph).to_be_visible()
    expect(graph.locator("g.node-dataset")).to_have_count(2)
    expect(graph.locator("g.node-version")).to_have_count(2)
    expect(graph).to_contain_text("mortgage-pd v2")
    expect(page.locator("#lineage-graph")).to_contain_text(first.artifact_sha256)
    page.screenshot(path=str(screenshots / "21-lineage.png"), full_page=True)

    graph.locator("a", has_text="mortgage-pd v1").click()
    expect(page.locator("h1")).to_contain_text("version 1")
    page.get_by_role("link", name="Its predictions").click()
    expect(page.locator("table tbody tr")).to_have_count(3)
    page.screenshot(path=str(screenshots / "22-prediction-log.png"), full_page=True)

    page.get_by_role("link", name="Audit trail").first.click()
    page.get_by_role("button", name="Verify now").click()
    expect(page.locator("#job-status")).to_have_text("Verification PASSED")  # the verdict (worker ran at commit)
    result = page.locator("#verification-result")
    expect(result).to_contain_text("Verified: the audit trail, the prediction seals and every evidence row are intact.")
    expect(result).to_have_attribute("data-ok", "true")
    page.screenshot(path=str(screenshots / "23-verified.png"), full_page=True)
    assert AuditEvent.objects.filter(action=audit.AUDIT_VERIFIED, actor_username=auditor.username).count() == 1

    page.goto(f"{base}/audit/models/mortgage-pd/versions/1/")
    # without a broker the worker's part runs when the POST commits, so the click waits for the render
    page.get_by_role("button", name="Generate compliance report (PDF/A)").click(timeout=60_000)
    expect(page.locator("#job-status")).to_have_text("Done")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download compliance report (PDF/A)").click()
    download = download_info.value
    assert download.suggested_filename == "mortgage-pd-v1-compliance-report.pdf"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    pdf = saved.read_bytes()
    assert hashlib.sha256(pdf).hexdigest() == page.locator("#job-sha256").inner_text()
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert "mortgage-pd version 1" in text and "Meets the credit policy." in text
    event = AuditEvent.objects.filter(action=audit.REPORT_GENERATED).latest("seq")
    assert event.actor_username == auditor.username and event.data["sha256"] == hashlib.sha256(pdf).hexdigest()
    page.screenshot(path=str(screenshots / "24-version.png"), full_page=True)
