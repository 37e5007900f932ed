"""Model risk management in Chromium: a validator writes a report with conditions from
the validation page (after computing the benchmark), a risk officer sees it and the change's
materiality on the review page and approves, an auditor reads the inventory (with a vendor model)
and downloads its CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from core.roles import AUDITORS, VALIDATORS
from governance.models import Finding, ValidationReport
from lifecycle import services
from lifecycle.models import Status
from tests.e2e.test_data_scientist import log_in
from tests.e2e.test_risk_officer import admin_log_in, decide, review_url, version_in_review
from tests.factories import UserFactory
from tests.governance.conftest import SECTIONS


def test_validator_then_officer_then_auditor(
    page: Page,
    live_server: Any,
    data_scientist: Any,
    risk_officer: Any,
    second_officer: Any,
    skops_bytes: bytes,
    train_csv: bytes,
    eval_csv: bytes,
    screenshots: Path,
) -> None:
    base = live_server.url
    version = version_in_review(data_scientist, "loan-default-mrm", "high", skops_bytes, train_csv, eval_csv)
    validator = UserFactory(username="valerie", roles=[VALIDATORS])
    auditor = UserFactory(username="audrey", roles=[AUDITORS])
    services.register_model(
        actor=data_scientist, name="bureau-score", title="Bureau score", kind="vendor", exposure=20_000_000
    )

    # --- the validator computes the benchmark and writes a report with conditions --------------
    log_in(page, base, validator)
    page.goto(f"{base}/registry/models/loan-default-mrm/versions/{version.version}/validation/")
    page.locator("#compute-benchmark").click()
    expect(page.locator("#benchmark")).to_contain_text("decision tree (max depth 5)")
    expect(page.locator("#benchmark")).to_contain_text("credit_amount")
    page.screenshot(path=str(screenshots / "29-validation-benchmark.png"), full_page=True)
    page.select_option("#conclusion", "fit_with_conditions")
    for name, text in SECTIONS.items():
        page.fill(f"#{name}", text)
    page.fill("#conditions", "Recalibrate on local data within 90 days.\nReport the default rate monthly.")
    page.locator("#record-validation").click()
    expect(page.locator("#validation-reports")).to_contain_text("Fit with conditions")
    expect(page.locator("#validation-reports")).to_contain_text("in force")
    page.screenshot(path=str(screenshots / "29-validation-recorded.png"), full_page=True)
    report = ValidationReport.objects.get()
    assert report.validator == validator and len(report.conditions) == 2
    assert Finding.objects.filter(version=version, key__startswith="validation:").count() == 2

    # --- risk officers see the report and the change's materiality, and approve -----------------
    context = page.context
    context.clear_cookies()
    admin_log_in(page, base, risk_officer)
    page.goto(review_url(base, version))
    expect(page.locator("#validation-reports")).to_contain_text("Fit with conditions by valerie")
    expect(page.locator("#change-materiality")).to_contain_text("Material change")
    expect(page.locator("#change-materiality")).to_contain_text("first_version")
    page.screenshot(path=str(screenshots / "29-review-validation-materiality.png"), full_page=True)
    decide(page, "approve", "First approval: the validator's conditions are owned by the model's owner.", override=True)
    context.clear_cookies()
    admin_log_in(page, base, second_officer)
    page.goto(review_url(base, version))
    decide(page, "approve", "Second approval, concurring.", override=True)
    expect(page.locator("#review-status")).to_have_text("Approved")
    version.refresh_from_db()
    assert version.status == Status.APPROVED

    # --- the auditor reads the inventory and exports it -------------------------------------
    context.clear_cookies()
    log_in(page, base, auditor)
    page.goto(f"{base}/audit/inventory/")
    expect(page.locator("#inventory-bureau-score")).to_contain_text("vendor")
    expect(page.locator("#inventory-bureau-score")).to_contain_text("not served here")
    expect(page.locator("#inventory-loan-default-mrm")).to_contain_text("fit_with_conditions (valerie)")
    page.screenshot(path=str(screenshots / "29-inventory.png"), full_page=True)
    with page.expect_download() as download:
        page.locator("#inventory-csv").click()
    assert download.value.suggested_filename == "model-inventory.csv"
