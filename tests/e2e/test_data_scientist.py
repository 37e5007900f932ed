"""A data scientist in a real browser: log in, register a model, upload a version, submit it.

Runs headless Chromium against pytest-django's live server; the page's own JavaScript builds
the sensitive-feature picker, so this also checks what the unit tests cannot.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from core.models import AuditEvent
from governance.models import CheckRun
from lifecycle.models import ModelVersion, RegisteredModel

PASSWORD = "correct-horse-battery"

# transaction=True: the live server runs in another thread and must see committed rows.
# (The role groups the flush deletes are recreated by the autouse fixture in conftest.py.)
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

INTENDED_USE = "Pre-screening consumer loan applications for default risk, reviewed by a credit officer."
OUT_OF_SCOPE = "Fully automated rejection of applicants without human review."
ETHICS = "Sex and age group are checked for disparate impact before every approval."


def log_in(page: Page, base_url: str, user: Any, screenshots: Path | None = None) -> None:
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    if screenshots is not None:
        page.screenshot(path=str(screenshots / "01-login.png"), full_page=True)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}/")
    expect(page.locator("h1")).to_contain_text(user.username)


def register_model(page: Page, base_url: str, name: str, screenshots: Path | None = None) -> None:
    page.goto(f"{base_url}/registry/models/new/")
    page.fill("#id_name", name)
    page.fill("#id_title", "Loan default")
    page.fill("#id_description", "Predicts whether a consumer loan applicant is a good credit risk.")
    page.select_option("#id_risk_tier", "high")
    if screenshots is not None:
        page.screenshot(path=str(screenshots / "02-register.png"), full_page=True)
    page.get_by_role("button", name="Register").click()
    page.wait_for_url(f"{base_url}/registry/models/{name}/versions/new/")


def test_data_scientist_registers_uploads_and_submits(
    page: Page,
    live_server: Any,
    data_scientist: Any,
    skops_bytes: bytes,
    train_csv: bytes,
    eval_csv: bytes,
    tmp_path: Path,
    screenshots: Path,
) -> None:
    base = live_server.url
    artifact = tmp_path / "model.skops"
    artifact.write_bytes(skops_bytes)
    train = tmp_path / "german-train.csv"
    train.write_bytes(train_csv)
    evaluation = tmp_path / "german-eval.csv"
    evaluation.write_bytes(eval_csv)

    log_in(page, base, data_scientist, screenshots)
    register_model(page, base, "loan-default", screenshots)
    assert RegisteredModel.objects.filter(name="loan-default", owner=data_scientist).exists()
    expect(page.locator(".msg.success")).to_contain_text("Registered loan-default")

    # --- the new-version form ---------------------------------------------------------
    page.set_input_files("#id_artifact", str(artifact))
    page.set_input_files("#id_training_data", str(train))
    picker = page.locator("#sensitive-picker")
    expect(picker).to_contain_text("Choose the evaluation data")
    page.set_input_files("#id_evaluation_data", str(evaluation))
    # The page's script reads the CSV header and turns it into checkboxes.
    expect(picker.locator("input[type=checkbox]").first).to_be_visible()
    expect(picker.locator("input[type=checkbox][value=risk]")).to_have_count(1)
    page.fill("#id_label_column", "risk")
    picker.locator("input[type=checkbox][value=sex]").check()
    picker.locator("input[type=checkbox][value=age_group]").check()
    expect(page.locator("#id_sensitive_features")).to_have_value("sex, age_group")
    page.fill("#id_code_repository", "https://git.example.org/credit/loan-default")
    page.fill("#id_code_commit", "9b1e4c2")
    page.fill("#id_model_details", "Logistic regression on the German credit data, one-hot encoded categoricals.")
    page.fill("#id_intended_use", INTENDED_USE)
    page.fill("#id_out_of_scope_uses", OUT_OF_SCOPE)
    page.fill("#id_ethical_considerations", ETHICS)
    page.fill("#id_factors", "Sex and age group (under 25, 25 and over).")
    page.fill("#id_metrics", "Accuracy, balanced accuracy, ROC AUC, F1; demographic parity and equalized odds.")
    page.fill("#id_caveats_and_recommendations", "German credit data of the 1970s: recalibrate on local data.")
    page.screenshot(path=str(screenshots / "03-version-form.png"), full_page=True)
    page.get_by_role("button", name="Save draft").click()
    page.wait_for_url(re.compile(r"/registry/models/loan-default/versions/1/$"))

    # --- the version page ---------------------------------------------------------------
    expect(page.locator("#version-status")).to_have_text("Draft")
    expect(page.locator(".msg.success")).to_contain_text("as a draft")
    expect(page.locator("#artifact-sha256")).to_have_text(hashlib.sha256(skops_bytes).hexdigest())
    lineage = page.locator("#lineage")
    expect(lineage).to_contain_text(hashlib.sha256(train_csv).hexdigest())
    expect(lineage).to_contain_text(hashlib.sha256(eval_csv).hexdigest())
    expect(lineage).to_contain_text("9b1e4c2")
    expect(lineage).to_contain_text("https://git.example.org/credit/loan-default")
    expect(page.get_by_text("sensitive features:")).to_contain_text("sex")
    expect(page.get_by_text("sensitive features:")).to_contain_text("age_group")
    card = page.locator("#model-card")
    expect(card).to_contain_text(INTENDED_USE)
    expect(card).to_contain_text(OUT_OF_SCOPE)
    expect(card).to_contain_text(ETHICS)
    page.screenshot(path=str(screenshots / "04-version-page.png"), full_page=True)

    version = ModelVersion.objects.get(registered_model__name="loan-default", version=1)
    assert version.status == "draft"
    assert version.created_by == data_scientist
    assert version.label_column == "risk"
    assert version.sensitive_features == ["sex", "age_group"]
    assert version.artifact_sha256 == hashlib.sha256(skops_bytes).hexdigest()
    assert version.training_dataset.sha256 == hashlib.sha256(train_csv).hexdigest()
    assert version.evaluation_dataset.sha256 == hashlib.sha256(eval_csv).hexdigest()
    assert version.code_commit == "9b1e4c2"
    assert version.card.intended_use == INTENDED_USE

    # --- submit for review ----------------------------------------------------------------
    page.locator("#submit-for-review").click()
    page.wait_for_load_state()
    expect(page.locator(".msg.success")).to_contain_text("was submitted")
    expect(page.locator("#version-status")).not_to_have_text("Draft")
    # The checks run in-process right after the submission commits, so the page that follows
    # already shows the version in review with every check finished.
    expect(page.locator("#version-status")).to_have_text("In review")
    expect(page.locator("#submit-for-review")).to_have_count(0)
    checks = page.locator("#checks")
    expect(checks).to_be_visible()
    for kind in ("validation", "fairness", "reproducibility"):
        badge = checks.locator(f"#check-{kind} [data-check-status]").first
        expect(badge).to_be_visible()
        expect(badge).to_have_attribute("data-check-status", re.compile(r"^(passed|failed|error)$"))
    # The fairness check draws one per-group bar chart per sensitive feature.
    expect(checks.locator("#check-fairness svg").first).to_be_visible()
    page.screenshot(path=str(screenshots / "05-submitted.png"), full_page=True)

    version.refresh_from_db()
    assert version.status == "in_review"
    assert CheckRun.objects.filter(version=version).count() == 5  # with the reference profile
    assert version.submitted_by == data_scientist
    assert AuditEvent.objects.filter(
        action="lifecycle.version.submitted", target_type="lifecycle.modelversion", target_id=str(version.pk)
    ).exists()


def test_pickle_upload_is_refused_in_the_browser(
    page: Page,
    live_server: Any,
    data_scientist: Any,
    logreg: Any,
    train_csv: bytes,
    eval_csv: bytes,
    tmp_path: Path,
    screenshots: Path,
) -> None:
    base = live_server.url
    disguised = tmp_path / "model.skops"
    disguised.write_bytes(pickle.dumps(logreg))
    train = tmp_path / "german-train.csv"
    train.write_bytes(train_csv)
    evaluation = tmp_path / "german-eval.csv"
    evaluation.write_bytes(eval_csv)

    log_in(page, base, data_scientist)
    register_model(page, base, "loan-default")

    page.set_input_files("#id_artifact", str(disguised))
    page.set_input_files("#id_training_data", str(train))
    page.set_input_files("#id_evaluation_data", str(evaluation))
    page.fill("#id_label_column", "risk")
    page.locator("#sensitive-picker input[value=sex]").check()
    page.fill("#id_intended_use", INTENDED_USE)
    page.get_by_role("button", name="Save draft").click()
    page.wait_for_load_state()

    # The form comes back with the error beside the artifact field.
    artifact_field = page.locator(".field", has=page.locator("#id_artifact"))
    expect(artifact_field).to_have_class(re.compile(r"\bhas-error\b"))
    error = artifact_field.locator(".error")
    expect(error).to_contain_text("pickle")
    expect(error).to_contain_text('skops.io.dump(model, "model.skops")')
    expect(page.locator(".errors").first).to_contain_text("The version was not saved")
    page.screenshot(path=str(screenshots / "06-refused.png"), full_page=True)

    assert not ModelVersion.objects.exists()
