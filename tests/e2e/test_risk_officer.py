"""A risk officer in a real browser: the review queue, the review page with its checks and
charts, approval (with an override for a failed check), deployment; and the four-eyes rule of
a high-tier model, where two different officers must approve.

The versions under review are made in the test setup: registered, uploaded and submitted by the
data scientist; their checks then run synchronously (submission enqueues them on commit; the
explicit run_check calls are idempotent and make that independent of the Celery settings).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from core.models import AuditEvent
from governance import tasks, workflow
from governance.models import CheckRun, Decision
from lifecycle.models import ModelVersion, Status
from tests.conftest import make_version
from tests.factories import RegisteredModelFactory
from tests.governance.conftest import validated

PASSWORD = "correct-horse-battery"

# transaction=True: the live server runs in another thread and must see committed rows.
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def version_in_review(
    owner: Any, name: str, tier: str, skops_bytes: bytes, train_csv: bytes, eval_csv: bytes
) -> ModelVersion:
    model = RegisteredModelFactory(name=name, owner=owner, risk_tier=tier)
    version = make_version(owner, model, skops_bytes, train_csv, eval_csv)
    workflow.submit_version(version.pk, actor=owner)
    for check in CheckRun.objects.filter(version=version):
        tasks.run_check_task(check.pk)
    version.refresh_from_db()
    assert version.status == Status.IN_REVIEW
    return version


def admin_log_in(page: Page, base_url: str, user: Any) -> None:
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}/admin/")


def admin_log_out(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/admin/")
    page.locator("#logout-form button").click()
    # LOGOUT_REDIRECT_URL sends everyone, officers included, to the site's own login page.
    page.wait_for_url(f"{base_url}/login/")


def review_url(base_url: str, version: ModelVersion) -> str:
    return f"{base_url}/admin/governance/versionreview/{version.pk}/change/"


def decide(page: Page, action: str, justification: str, *, override: bool = False) -> None:
    page.fill("textarea#justification", justification)
    if override:
        box = page.locator("#override")
        if box.count():
            box.check()
    page.locator(f"button#action-{action}").click()
    page.wait_for_load_state()


def test_risk_officer_reviews_approves_with_override_and_deploys(
    page: Page,
    live_server: Any,
    data_scientist: Any,
    risk_officer: Any,
    skops_bytes: bytes,
    train_csv: bytes,
    eval_csv: bytes,
    screenshots: Path,
) -> None:
    base = live_server.url
    version = version_in_review(data_scientist, "loan-default", "medium", skops_bytes, train_csv, eval_csv)
    # With the default policy the demo model's fairness check fails, so approval needs an override.
    fairness = CheckRun.objects.get(version=version, kind="fairness")
    assert fairness.status == "failed"

    admin_log_in(page, base, risk_officer)

    # --- the review queue ---------------------------------------------------------------
    page.goto(f"{base}/admin/governance/versionreview/")
    page.wait_for_url(re.compile(r"/admin/governance/versionreview/\?status__exact=in_review$"))
    row = page.locator("#result_list tbody tr", has_text=str(version))
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Medium")
    expect(row).to_contain_text("In review")
    expect(row).to_contain_text("fairness: failed")
    expect(row).to_contain_text(data_scientist.username)
    page.screenshot(path=str(screenshots / "10-queue.png"), full_page=True)
    row.get_by_role("link", name=str(version)).click()
    page.wait_for_url(review_url(base, version))

    # --- the review page: checks and chart ----------------------------------------------
    expect(page.locator("#review-status")).to_have_text("In review")
    checks_section = page.locator("#checks")
    for kind in ("validation", "fairness", "reproducibility"):
        expect(checks_section.locator(f"#check-{kind}")).to_be_visible()
    expect(checks_section.locator("#check-fairness [data-check-status]")).to_have_attribute(
        "data-check-status", "failed"
    )
    expect(checks_section.locator("svg").first).to_be_visible()
    expect(checks_section).to_contain_text("Demographic parity difference")  # named in words
    expect(page.locator("#override")).to_be_visible()
    expect(page.locator("#action-approve")).to_be_visible()
    page.screenshot(path=str(screenshots / "11-review.png"), full_page=True)

    # --- approve, overriding the failed fairness check -----------------------------------
    decide(
        page,
        "approve",
        "Sex parity gap is a known artefact of the small evaluation split; accepted with monthly monitoring.",
        override=True,
    )
    expect(page.locator(".messagelist .success")).to_contain_text("is now approved")
    expect(page.locator("#review-status")).to_have_text("Approved")
    expect(page.locator("#action-deploy")).to_be_visible()
    page.screenshot(path=str(screenshots / "12-approved.png"), full_page=True)

    # --- deploy ---------------------------------------------------------------------------
    decide(page, "deploy", "Approved with override; deploying for the Q3 pilot.")
    expect(page.locator(".messagelist .success")).to_contain_text("is now production")
    expect(page.locator("#review-status")).to_have_text("Production")
    page.screenshot(path=str(screenshots / "13-production.png"), full_page=True)

    version.refresh_from_db()
    assert version.status == Status.PRODUCTION
    approval = Decision.objects.get(version=version, kind="approve")
    assert approval.override is True
    assert approval.actor == risk_officer
    events = AuditEvent.objects.filter(target_type="lifecycle.modelversion", target_id=str(version.pk))
    assert events.filter(action="governance.version.approved", actor=risk_officer).exists()
    assert events.filter(action="governance.version.deployed", actor=risk_officer).exists()


def test_an_officer_raises_the_tier_to_high_and_then_two_different_officers_must_approve(
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
    # The data scientist proposed "low" (one approval would do).
    version = version_in_review(data_scientist, "loan-default-high", "low", skops_bytes, train_csv, eval_csv)

    # --- the first officer raises the effective tier to high: two approvals are now needed --
    admin_log_in(page, base, risk_officer)
    page.goto(review_url(base, version))
    expect(page.locator("#review-status")).to_have_text("In review")
    expect(page.locator("#approvals-progress")).to_contain_text("0 of 1 required for tier low")
    page.select_option("#tier", "high")
    page.fill("#tier-justification", "Automated credit decisions on people: high risk under our policy.")
    page.locator("#action-set-tier").click()
    expect(page.locator(".messagelist .success")).to_contain_text("Effective risk tier set to high")
    expect(page.locator("#tier-line")).to_contain_text("proposed by the data scientist: low")
    expect(page.locator("#tier-line")).to_contain_text("effective: high")
    expect(page.locator("#approvals-progress")).to_contain_text("0 of 2 required for tier high")
    page.screenshot(path=str(screenshots / "14-tier-raised.png"), full_page=True)
    assert AuditEvent.objects.filter(action="governance.risk_tier.set").get().data["after"] == "high"
    validated(version)  # the policy's default: high-tier approval needs an independent validation report
    page.reload()  # (the page was drawn before the report existed: Approve was disabled then)

    # --- the first officer approves: one approval of two ---------------------------------
    decide(page, "approve", "First approval: metrics acceptable, fairness gap overridden.", override=True)
    expect(page.locator(".messagelist .success")).to_be_visible()
    expect(page.locator("#review-status")).to_have_text("In review")
    expect(page.locator("#action-approve")).to_have_count(0)
    expect(page.locator("#decisions")).to_contain_text(risk_officer.username)
    expect(page.locator("#approvals-progress")).to_contain_text("1 of 2 required for tier high")
    page.screenshot(path=str(screenshots / "14-high-first-approval.png"), full_page=True)
    version.refresh_from_db()
    assert version.status == Status.IN_REVIEW
    admin_log_out(page, base)

    # --- the second officer approves: the version is approved ----------------------------
    admin_log_in(page, base, second_officer)
    page.goto(review_url(base, version))
    expect(page.locator("#review-status")).to_have_text("In review")
    expect(page.locator("#action-approve")).to_be_visible()
    decide(page, "approve", "Second approval: concur with the first reviewer.", override=True)
    expect(page.locator(".messagelist .success")).to_contain_text("is now approved")
    expect(page.locator("#review-status")).to_have_text("Approved")
    page.screenshot(path=str(screenshots / "15-high-approved.png"), full_page=True)

    version.refresh_from_db()
    assert version.status == Status.APPROVED
    approvers = set(Decision.objects.filter(version=version, kind="approve").values_list("actor_username", flat=True))
    assert approvers == {risk_officer.username, second_officer.username}
    assert AuditEvent.objects.filter(
        action="governance.version.approved", target_type="lifecycle.modelversion", target_id=str(version.pk)
    ).exists()


def test_after_the_demo_an_officer_sees_the_drift_alert_assigns_the_finding_and_recertifies_another_model(
    page: Page, live_server: Any, screenshots: Path, tmp_path: Path
) -> None:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from governance.models import Finding

    call_command("seed_demo")  # what `make demo` loads, checks run in-process
    base = live_server.url
    rita = get_user_model().objects.get(username="rita")
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", "rita")
    page.fill("#id_password", "demo-password-2026")
    page.locator("input[type=submit]").click()

    # --- the drifted model's monitoring tab: the alert and the finding -----------------------
    page.goto(f"{base}/monitoring/loan-prescreen/1/")
    expect(page.locator("#alerts")).to_contain_text("PSI of credit_amount")
    expect(page.locator("#findings")).to_contain_text("Drift alert on credit_amount")
    expect(page.locator("#psi-charts svg").first).to_be_visible()
    page.screenshot(path=str(screenshots / "20-monitoring-alert.png"), full_page=True)

    # --- assign the finding to the other officer ---------------------------------------------
    finding = Finding.objects.get(version__registered_model__name="loan-prescreen", key="drift:credit_amount")
    page.locator("#findings a.finding-link", has_text=finding.title).click()  # the finding's own page
    expect(page.locator("#finding-status")).to_have_text("open")
    page.locator("#assign-link").click()  # assignment stays in the admin
    expect(page.locator("#finding-status")).to_have_text("open")
    page.select_option("#owner", label="omar")
    page.locator("#action-assign").click()
    expect(page.locator(".messagelist .success")).to_contain_text("assigned to omar")
    expect(page.locator("#finding-owner")).to_have_text("omar")
    page.screenshot(path=str(screenshots / "21-finding-assigned.png"), full_page=True)
    finding.refresh_from_db()
    assert finding.owner is not None and finding.owner.username == "omar"

    # --- recertify the healthy model over its monitoring evidence ----------------------------
    healthy = ModelVersion.objects.get(registered_model__name="collections-priority")
    before = healthy.approval_expires_at
    page.goto(review_url(base, healthy))
    page.fill("#justification", "Monitoring clean since go-live; no open finding; recertified for the policy period.")
    page.locator("#action-recertify").click()
    expect(page.locator(".messagelist .success")).to_contain_text("Recertification recorded")
    page.screenshot(path=str(screenshots / "22-recertified.png"), full_page=True)
    decision = Decision.objects.get(version=healthy, kind="recertify")
    assert decision.actor == rita and len(decision.snapshot_sha256) == 64
    healthy.refresh_from_db()
    assert healthy.approval_expires_at > before

    # --- the challenger's shadow comparison on its review page ---------------------
    challenger = ModelVersion.objects.get(registered_model__name="loan-prescreen", version=2)
    page.goto(review_url(base, challenger))
    shadow = page.locator("#shadow-evidence")
    expect(shadow).to_contain_text("In shadow since")
    expect(shadow.locator("#shadow-table tbody tr")).to_have_count(1)
    expect(shadow.locator(".shadow-agreement")).to_have_text(re.compile(r"0\.\d{3}"))
    expect(shadow).to_contain_text("accuracy")
    shadow.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "23-shadow-comparison.png"), full_page=True)

    # --- a data scientist scores a CSV as a batch job and downloads the result ---------------
    import hashlib

    from serving.models import BatchJob

    page.context.clear_cookies()
    page.goto(f"{base}/login/")
    page.fill("#id_username", "dana")
    page.fill("#id_password", "demo-password-2026")
    page.locator("button[type=submit], input[type=submit]").first.click()
    page.goto(f"{base}/batches/")
    expect(page.locator("#jobs")).to_contain_text("loan-prescreen v1")  # the demo's job over a stored dataset
    evaluation = tmp_path / "applications.csv"
    from lifecycle import demo_data

    demo_data.split(demo_data.load_german_credit())[1].head(250).to_csv(evaluation, index=False)
    page.select_option("#target", value="loan-prescreen:1")
    page.set_input_files("#data", str(evaluation))
    page.get_by_role("button", name="Start the job").click()
    page.wait_for_url(re.compile(r"/batches/[0-9a-f-]{36}/$"))
    expect(page.locator("#job-progress")).to_have_attribute("value", "100.0")
    expect(page.locator("#job-status")).to_have_text("Completed")
    expect(page.locator("#job-rows")).to_have_text("250")
    page.screenshot(path=str(screenshots / "24-batch-job.png"), full_page=True)
    with page.expect_download() as download_info:
        page.locator("#result-link").click()
    saved = tmp_path / "result.csv"
    download_info.value.save_as(saved)
    job = BatchJob.objects.get(input_name="applications.csv")
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == job.result_sha256
    assert saved.read_text().count("\n") == 251  # a header and one line per row

    # --- a risk officer erases a data subject; the auditor sees [erased] -----------
    from serving import subject_keys
    from serving.models import PredictionKey

    record_id = PredictionKey.objects.get(key=subject_keys.business_key_hash("2026-118")).record_id
    page.context.clear_cookies()
    for username in ("rita", "audrey"):
        page.goto(f"{base}/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", "demo-password-2026")
        page.locator("button[type=submit], input[type=submit]").first.click()
        if username == "rita":
            page.goto(f"{base}/audit/predictions/{record_id}/")
            expect(page.locator("#business-keys")).to_have_text("2026-118")  # readable before the erasure
            page.goto(f"{base}/subjects/erasure/")
            page.select_option("#model", value="loan-prescreen")
            page.fill("#subject", "2026-118")
            page.locator("#find-button").click()
            expect(page.locator("#erase-summary")).to_contain_text("loan-prescreen")
            page.fill("#erase-reason", "GDPR art. 17 request, ticket DPO-1")
            page.locator("#erase-button").click()
            expect(page.locator("#erasure-message")).to_contain_text("data key(s) of that subject in loan-prescreen")
            expect(page.locator("#erasure-message")).not_to_contain_text("2026-118")
            expect(page.get_by_text("data key(s) of that subject")).to_have_count(1)  # said once, in place
            expect(page.locator("#model")).to_have_value("loan-prescreen")  # the model erased from stays chosen
            page.screenshot(path=str(screenshots / "25-subject-erased.png"), full_page=True)
            page.context.clear_cookies()
    page.goto(f"{base}/audit/predictions/{record_id}/")
    expect(page.locator("#business-keys")).to_have_text("[erased]")
    expect(page.locator("#logged-inputs")).to_contain_text('"age":"[erased]"')
    expect(page.locator("#logged-inputs")).to_contain_text('"sex":"[erased]"')
    page.screenshot(path=str(screenshots / "26-auditor-sees-erased.png"), full_page=True)
