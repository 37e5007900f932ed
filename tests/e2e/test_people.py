"""People's work in Chromium (docs/design.md, "Human oversight and contestation"; the findings and the
review page): a case officer overrides from the oversight queue and answers a contestation that
then reads on the receipt; a data scientist answers her finding; a blocked Recertify says why; a
refused approval keeps its justification; an erasure needs its confirmation and leaves the
decision's page whole. Each page is shot at 1280 and 1920 wide."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from core.models import AuditEvent
from governance import findings, rules, workflow
from governance.policies import active_policy, update_policy
from lifecycle import demo_data
from lifecycle.models import ModelVersion
from serving import contest, oversight, subject_keys
from serving.models import DecisionReview, PredictionLog, SubjectKey
from serving.predict import Caller, PredictionRequest, predict
from serving.seals import seal_predictions
from serving.services import create_api_key
from tests.conftest import make_version
from tests.e2e.test_data_scientist import log_in
from tests.e2e.test_risk_officer import admin_log_in, review_url, version_in_review
from tests.factories import RegisteredModelFactory
from tests.serving.conftest import checked

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def shoot(page: Page, screenshots: Path, name: str) -> None:
    """The page at 1280 and at 1920 wide."""
    for width in (1280, 1920):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(screenshots / f"people-{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def production(owner: Any, officer: Any, skops_bytes: bytes, train_csv: bytes, eval_csv: bytes, **kw: Any) -> Any:
    update_policy(
        active_policy().pk,
        actor=None,
        justification="Set for this test.",
        changes={"max_fairness_difference": 1.0, "min_fairness_ratio": 0.0},
    )
    model = RegisteredModelFactory(name="credit-risk", title="Consumer credit", owner=owner)
    version = checked(make_version(owner, model, skops_bytes, train_csv, eval_csv, **kw), owner)
    workflow.approve_version(version.pk, actor=officer, justification="Meets the credit policy.")
    return workflow.deploy_version(version.pk, actor=officer, justification="Go live.")


def adverse_rows(german: Any, logreg: Any, n: int) -> list[dict[str, Any]]:
    frame = german[1][demo_data.NUMERIC + demo_data.CATEGORICAL]
    order = np.argsort(logreg.decision_function(frame))
    return [frame.iloc[int(i)].to_dict() for i in order[:n]]


def serve_from_client(version: ModelVersion, rows: list[dict[str, Any]], keys: list[str]) -> tuple[Any, Any]:
    key, _ = create_api_key(actor=None, name="loan-portal")
    served = predict(
        PredictionRequest(
            Caller(user=None, api_key=key), version.registered_model.name, "v1", instances=rows, business_keys=keys
        )
    )
    record = PredictionLog.objects.get(public_id=served.record.public_id)
    return record, key


def test_a_case_officer_overrides_a_routed_decision_from_the_queue(
    page: Page, live_server: Any, data_scientist: Any, risk_officer: Any, case_officer: Any,
    german: Any, logreg: Any, skops_bytes: bytes, train_csv: bytes, eval_csv: bytes, screenshots: Path,
) -> None:  # fmt: skip
    version = production(data_scientist, risk_officer, skops_bytes, train_csv, eval_csv)
    oversight.set_oversight_rule(
        model_name="credit-risk", actor=risk_officer, justification="Art. 14: declines get a person.", adverse=True
    )
    record, _ = serve_from_client(version, adverse_rows(german, logreg, 2), ["2026-301", "2026-302"])
    assert oversight.route_new_decisions(now=timezone.now() + timedelta(seconds=5)) == 2
    automated = record.outputs["predictions"][0]

    log_in(page, live_server.url, case_officer)
    expect(page.locator("#case-officer")).to_contain_text("oversight queue")
    page.get_by_role("link", name="Open the oversight queue").click()
    rows = page.locator("#queue tr.queue-row")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Adverse decision")
    expect(rows.first).to_contain_text("credit-risk v1")
    shoot(page, screenshots, "queue")
    rows.first.get_by_role("link", name="Review").click()
    expect(page.locator("#oversight")).to_contain_text("in the oversight queue")
    expect(page.locator("#reason-codes")).to_be_visible()  # the explanation beside the form
    shoot(page, screenshots, "decision-review")
    page.check("#review-override")
    page.select_option("#review-final", value=str(1 - automated))
    page.fill("#review-justification", "Bank statement shows savings the application missed.")
    page.click("#review-submit")
    page.wait_for_url(f"{live_server.url}/oversight/")
    expect(page.locator(".msg.success")).to_contain_text("overridden")
    expect(page.locator("#queue tr.queue-row")).to_have_count(1)
    review = DecisionReview.objects.get()
    assert (review.action, review.final_decision, review.reviewer) == ("overridden", 1 - automated, "cora")
    assert review.user == case_officer


def test_a_contested_decision_is_answered_and_the_answer_is_on_the_receipt(
    page: Page, live_server: Any, data_scientist: Any, risk_officer: Any, case_officer: Any, auditor: Any,
    german: Any, logreg: Any, skops_bytes: bytes, train_csv: bytes, eval_csv: bytes, screenshots: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    version = production(data_scientist, risk_officer, skops_bytes, train_csv, eval_csv)
    record, key = serve_from_client(version, adverse_rows(german, logreg, 1), ["2026-204"])
    case = contest.contest_decision(
        record=record, row=0, statement="My savings were recorded wrongly.", caller="api-key:loan-portal",
        api_key=key, actor=None,
    )  # fmt: skip
    automated = record.outputs["predictions"][0]

    log_in(page, live_server.url, case_officer)
    page.goto(f"{live_server.url}/oversight/")
    row = page.locator("#queue tr.queue-row")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("contested")
    expect(row).to_contain_text(f"{case.respond_by:%Y-%m-%d}")
    row.get_by_role("link", name="Answer").click()
    expect(page.locator("#contestations")).to_contain_text("My savings were recorded wrongly.")
    expect(page.locator("#review-form")).to_have_count(0)  # the answer is the review
    shoot(page, screenshots, "contest-open")
    page.fill("#answer-text", "We checked your bank statement and corrected the decision.")
    page.check("#answer-override")
    page.select_option("#answer-final", value=str(1 - automated))
    page.click("#answer-submit")
    expect(page.locator(f"#contest-answer-{case.pk}")).to_contain_text(f"corrected to {1 - automated}")
    shoot(page, screenshots, "contest-answered")
    with page.expect_download() as download_info:
        page.click("#receipt")
    pdf = tmp_path / "receipt.pdf"
    download_info.value.save_as(pdf)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "We checked your bank statement and corrected the decision." in text
    assert "CORRECTED" in text and "My savings were recorded wrongly." in text
    page.goto(f"{live_server.url}/oversight/")
    expect(page.locator("#queue-empty")).to_be_visible()


def test_a_data_scientist_answers_her_finding_and_an_officer_closes_it(
    page: Page, live_server: Any, data_scientist: Any, risk_officer: Any,
    skops_bytes: bytes, train_csv: bytes, eval_csv: bytes, screenshots: Path,
) -> None:  # fmt: skip
    version = production(data_scientist, risk_officer, skops_bytes, train_csv, eval_csv)
    finding, _ = findings.open_finding(
        version_id=version.pk, key="drift:age", severity="high", title="Drift on age (PSI 0.31)",
        description="The applicants' ages moved since the reference profile.", actor=risk_officer,
    )  # fmt: skip
    assert finding.owner == data_scientist

    log_in(page, live_server.url, data_scientist)
    assigned = page.locator("#assigned")
    expect(assigned).to_contain_text("Assigned to you")
    shoot(page, screenshots, "home-assigned")
    assigned.get_by_role("link", name="Drift on age (PSI 0.31)").click()
    page.wait_for_url(f"{live_server.url}/findings/{finding.pk}/")
    expect(page.locator("#close-why")).to_contain_text("Only risk officers close findings")
    page.fill("#finding-text", "The portal opened to students in May; retrained on the new population (v2).")
    page.click("#action-propose")
    expect(page.locator("#finding-comments")).to_contain_text("proposes closure")
    expect(page.locator("#finding-comments")).to_contain_text("opened to students in May")
    shoot(page, screenshots, "finding-owner")
    assert AuditEvent.objects.filter(action="governance.finding.closure_proposed").count() == 1

    page.context.clear_cookies()
    log_in(page, live_server.url, risk_officer)
    page.goto(f"{live_server.url}/findings/{finding.pk}/")
    page.fill("#finding-text", "Retrained version reviewed; drift explained.")
    page.click("#action-close")
    expect(page.locator("#finding-status")).to_have_text("closed")
    finding.refresh_from_db()
    assert not finding.is_open and finding.closed_by_username == risk_officer.username


def test_a_blocked_recertify_is_shown_with_the_rules_reason(
    page: Page, live_server: Any, data_scientist: Any, risk_officer: Any,
    skops_bytes: bytes, train_csv: bytes, eval_csv: bytes, screenshots: Path,
) -> None:  # fmt: skip
    version = production(data_scientist, risk_officer, skops_bytes, train_csv, eval_csv)
    findings.open_finding(version_id=version.pk, key="perf:auc", severity="high", title="AUC fell", actor=risk_officer)
    reason = rules.can_recertify(version, risk_officer).reason
    assert "finding" in reason

    admin_log_in(page, live_server.url, risk_officer)
    page.goto(review_url(live_server.url, version))
    expect(page.locator("#blocked-recertify")).to_be_disabled()
    expect(page.locator("#why-recertify")).to_have_text(reason)
    expect(page.locator("#action-retire")).to_be_visible()  # what is allowed stays a button
    expect(page.locator("#findings")).to_contain_text("AUC fell")  # titled finding links
    shoot(page, screenshots, "blocked-recertify")


def test_a_refused_approval_keeps_the_typed_justification(
    page: Page, live_server: Any, data_scientist: Any, risk_officer: Any,
    skops_bytes: bytes, train_csv: bytes, eval_csv: bytes, screenshots: Path,
) -> None:  # fmt: skip
    version = version_in_review(data_scientist, "loan-default", "medium", skops_bytes, train_csv, eval_csv)
    typed = "Parity gap is an artefact of the small split; monthly monitoring agreed with the committee."
    admin_log_in(page, live_server.url, risk_officer)
    page.goto(review_url(live_server.url, version))
    page.fill("textarea#justification", typed)
    page.locator("button#action-approve").click()  # without ticking the override of the failed check
    page.wait_for_load_state()
    expect(page.locator(".messagelist .error")).to_contain_text("Refused")
    expect(page.locator("textarea#justification")).to_have_value(typed)
    shoot(page, screenshots, "refused-approval")
    version.refresh_from_db()
    assert version.status == "in_review"


def test_erasure_needs_its_confirmation_and_the_decision_page_stays(
    page: Page, live_server: Any, data_scientist: Any, risk_officer: Any, settings: Any,
    german: Any, logreg: Any, skops_bytes: bytes, train_csv: bytes, eval_csv: bytes, screenshots: Path,
) -> None:  # fmt: skip
    settings.LOG_KEK = "11" * 32
    subject_keys.forget_keys()
    version = production(
        data_scientist, risk_officer, skops_bytes, train_csv, eval_csv,
        personal_features=["age", "sex"], subject_field="business_key",
    )  # fmt: skip
    record, _ = serve_from_client(version, adverse_rows(german, logreg, 2), ["2026-118", "2026-119"])

    log_in(page, live_server.url, risk_officer)
    page.goto(f"{live_server.url}/subjects/erasure/")
    page.select_option("#model", value="credit-risk")
    page.fill("#subject", "nobody-here")
    page.click("#find-button")
    message = page.locator("#erasure-message")
    expect(message).to_contain_text("Nothing found")
    expect(message).to_have_class("msg neutral")  # neutral, not a green success
    shoot(page, screenshots, "erasure-nothing")

    page.select_option("#model", value="credit-risk")
    page.fill("#subject", "2026-118")
    page.click("#find-button")
    expect(page.locator("#erase-summary")).to_contain_text("credit-risk")
    expect(page.locator("#erase-summary")).to_contain_text("1 decision in 1 logged request")
    button = page.locator("#erase-button")
    assert button.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(179, 38, 30)"  # red
    shoot(page, screenshots, "erasure-confirm")
    button.click()  # no reason: the form refuses to send
    assert not SubjectKey.objects.filter(erased_at__isnull=False).exists()
    page.fill("#erase-reason", "GDPR art. 17 request, ticket DPO-2026-041")
    button.click()
    expect(page.locator("#erasure-message")).to_contain_text("1 data key(s) of that subject in credit-risk")
    expect(page.locator("#erasure-message")).to_have_class("msg success")
    assert SubjectKey.objects.filter(erased_at__isnull=False).count() == 1
    event = AuditEvent.objects.filter(action="serving.subject.erased").latest("seq")
    assert event.data["reason"] == "GDPR art. 17 request, ticket DPO-2026-041"

    seal_predictions()
    page.goto(f"{live_server.url}/audit/decisions/{record.public_id}.0/")
    expect(page.locator("#erased-note")).to_be_visible()
    expect(page.locator("h1")).to_contain_text("Decision")
    expect(page.locator("#proof")).to_contain_text("inclusion proof verified")
    expect(page.locator("#receipt")).to_be_visible()
    shoot(page, screenshots, "erased-decision")
    with page.expect_download() as download_info:
        page.click("#receipt")
    assert download_info.value.path().read_bytes().startswith(b"%PDF")
