"""An auditor in Chromium, as a new user would go: types a business key, opens the decision,
sees its reason codes and the human review, downloads the receipt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from governance import workflow
from governance.policies import active_policy, update_policy
from lifecycle import demo_data
from serving import decisions
from serving.predict import Caller, PredictionRequest, predict
from tests.conftest import make_version
from tests.e2e.test_data_scientist import log_in
from tests.factories import RegisteredModelFactory
from tests.serving.conftest import checked

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_auditor_finds_a_decision_by_key_sees_reasons_and_review_and_downloads_the_receipt(
    page: Page,
    live_server: Any,
    data_scientist: Any,
    risk_officer: Any,
    auditor: Any,
    german: Any,
    logreg: Any,
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
    model = RegisteredModelFactory(name="credit-risk", title="Consumer credit", owner=data_scientist)
    version = checked(
        make_version(
            data_scientist,
            model,
            skops_bytes,
            train_csv,
            eval_csv,
            reason_texts={"duration": "Loan duration too long"},
        ),
        data_scientist,
    )
    workflow.approve_version(version.pk, actor=risk_officer, justification="Meets the credit policy.")
    workflow.deploy_version(version.pk, actor=risk_officer, justification="Go live.")
    frame = german[1][demo_data.NUMERIC + demo_data.CATEGORICAL]
    row = frame.iloc[int(np.argmin(logreg.decision_function(frame)))].to_dict()
    caller = Caller(user=risk_officer, api_key=None)
    served = predict(PredictionRequest(caller, model.name, "v1", instances=[row], business_keys=["2026-118"]))
    decisions.review_decision(
        record=served.record,
        row=0,
        action="overridden",
        final_decision=1,
        justification="New payslip shows a higher income.",
        reviewer=risk_officer.username,
        actor=risk_officer,
    )

    log_in(page, live_server.url, auditor)
    page.goto(f"{live_server.url}/audit/")
    page.fill("#decision-key", "2026-118")
    page.screenshot(path=str(screenshots / "decisions-01-find.png"), full_page=True)
    page.get_by_role("button", name="Find").click()
    expect(page.locator("h1")).to_contain_text("2026-118")
    expect(page.locator("#reason-codes")).to_contain_text("Loan duration too long")
    expect(page.locator("#reviews")).to_contain_text("Overridden")
    expect(page.locator("#reviews")).to_contain_text("New payslip shows a higher income.")
    page.screenshot(path=str(screenshots / "decisions-02-decision.png"), full_page=True)
    with page.expect_download() as download_info:
        page.click("#receipt")
    download = download_info.value
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    assert target.read_bytes().startswith(b"%PDF")
    assert download.suggested_filename == f"decision-receipt-{served.prediction_ids[0]}.pdf"
