"""The pages as one product, in a real browser: the batch page (no version chosen for you, the
input's id columns kept in the result), the admin a new risk officer opens, and no serious or
critical accessibility violation (axe-core) on each persona's main page.

Screenshots at 1280 and 1920 wide go to tests/e2e/screenshots/ (pages-*.png)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from playwright.sync_api import Page, expect

from core.roles import VALIDATORS
from governance import workflow
from governance.policies import active_policy, update_policy
from lifecycle import demo_data
from lifecycle.models import ModelVersion
from serving.models import BatchJob
from tests.conftest import make_version
from tests.e2e.test_data_scientist import log_in
from tests.factories import RegisteredModelFactory, UserFactory
from tests.serving.conftest import checked

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
WIDTHS = (1280, 1920)


def shoot(page: Page, screenshots: Path, name: str) -> None:
    """The page at each width the issue names, full length."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(screenshots / f"pages-{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def in_production(
    owner: Any, officer: Any, name: str, skops_bytes: bytes, train_csv: bytes, eval_csv: bytes
) -> ModelVersion:
    update_policy(
        active_policy().pk,
        actor=None,
        justification="Set for this test.",
        changes={"max_fairness_difference": 1.0, "min_fairness_ratio": 0.0},
    )
    model = RegisteredModelFactory(name=name, owner=owner, risk_tier="low")
    version = checked(make_version(owner, model, skops_bytes, train_csv, eval_csv), owner)
    workflow.approve_version(version.pk, actor=officer, justification="Reviewed.")
    return workflow.deploy_version(version.pk, actor=officer, justification="Go live.")


def test_the_batch_result_keeps_the_id_column_and_no_version_is_chosen_for_you(
    page: Page, live_server: Any, data_scientist: Any, risk_officer: Any, skops_bytes: bytes,
    train_csv: bytes, eval_csv: bytes, tmp_path: Path, screenshots: Path,
) -> None:  # fmt: skip
    base = live_server.url
    in_production(data_scientist, risk_officer, "a-credit", skops_bytes, train_csv, eval_csv)
    in_production(data_scientist, risk_officer, "b-credit", skops_bytes, train_csv, eval_csv)
    evaluation = demo_data.split(demo_data.load_german_credit())[1]
    frame = pd.concat([evaluation] * 5).reset_index(drop=True)  # 1,500 rows
    frame.insert(0, "application_id", [f"2027-{i:05d}" for i in range(len(frame))])
    applications = tmp_path / "applications.csv"
    frame.to_csv(applications, index=False)

    log_in(page, base, data_scientist)
    page.goto(f"{base}/batches/")
    # the first model alphabetically is not chosen for you: the placeholder is
    expect(page.locator("#target")).to_have_value("")
    expect(page.locator("#target option:checked")).to_have_text("Choose a version…")
    shoot(page, screenshots, "batch-form")
    page.set_input_files("#data", str(applications))
    page.get_by_role("button", name="Start the job").click()  # refused by the browser: no version
    expect(page).to_have_url(f"{base}/batches/")
    assert not BatchJob.objects.exists()

    page.select_option("#target", value="b-credit:1")
    page.fill("#id_columns", "application_id")
    page.get_by_role("button", name="Start the job").click()
    page.wait_for_url(re.compile(r"/batches/[0-9a-f-]{36}/$"))
    expect(page.locator("#job-status")).to_have_text("Completed")
    expect(page.locator("#job-rows")).to_have_text("1,500")  # separators
    expect(page.locator("#job-id-columns")).to_contain_text("application_id")
    shoot(page, screenshots, "batch-job")
    with page.expect_download() as download_info:
        page.locator("#result-link").click()
    rows = list(csv.DictReader(io.StringIO(Path(download_info.value.path()).read_text())))
    assert [r["application_id"] for r in rows] == list(frame["application_id"])
    assert BatchJob.objects.get().model_name == "b-credit"


def test_a_new_risk_officer_opens_the_review_queue_once_the_role_is_granted(
    page: Page, live_server: Any, data_scientist: Any, risk_officer: Any, skops_bytes: bytes,
    train_csv: bytes, eval_csv: bytes, screenshots: Path,
) -> None:  # fmt: skip
    base = live_server.url
    model = RegisteredModelFactory(
        name="churn-score", owner=data_scientist, risk_tier="low", effective_risk_tier="high"
    )
    version = checked(make_version(data_scientist, model, skops_bytes, train_csv, eval_csv), data_scientist)
    assert version.status == "in_review"
    root = UserFactory(username="root", roles=[], is_superuser=True, is_staff=True)
    nora = UserFactory(username="nora", roles=[])  # not staff: the role alone must open the queue
    assert not nora.is_staff

    log_in(page, base, root)
    page.goto(f"{base}/admin/auth/user/")
    expect(page.locator("#site-name")).to_contain_text("Model governance")
    expect(page.locator("#result_list tr", has_text="rita")).to_contain_text("risk-officers")  # the Roles column
    shoot(page, screenshots, "admin-users")
    page.goto(f"{base}/admin/auth/user/{nora.pk}/change/")
    page.check("input[name=roles][value=risk-officers]")
    page.fill("#id_role_justification", "Joins the model risk team.")
    page.locator("input[name=_save]").click()
    expect(page.locator("#result_list tr", has_text="nora")).to_contain_text("risk-officers")
    page.context.clear_cookies()

    log_in(page, base, nora)
    page.get_by_role("link", name="Review (admin)").click()
    page.get_by_role("link", name="Review queue").click()
    expect(page.locator("#queue-count")).to_contain_text("1 in review queue")
    row = page.locator("#result_list tbody tr")
    expect(row).to_contain_text("churn-score v1")
    expect(row.locator(".badge.tier-high")).to_have_text("High")  # the effective tier, the proposed beside it
    expect(row).to_contain_text("(proposed low)")
    page.get_by_role("link", name="High").click()  # the filter is on the effective tier, as the column
    expect(page.locator("#queue-count")).to_contain_text("1 in review queue")
    page.goto(f"{base}/admin/governance/versionreview/?status__exact=in_review&tier=low")
    expect(page.locator("#queue-count")).to_contain_text("0 in review queue")
    page.goto(f"{base}/admin/governance/versionreview/?status__exact=in_review")
    shoot(page, screenshots, "review-queue")
    page.get_by_role("link", name="churn-score v1").click()
    summary = page.locator("#checks-summary tbody tr")
    expect(summary.first).to_have_class("summary-failed")  # failures first, in words
    expect(summary.first).to_contain_text("Fairness")
    shoot(page, screenshots, "review-page")
    page.goto(f"{base}/registry/models/")
    expect(page.locator("tr", has_text="churn-score").locator(".badge")).to_have_text("High")
    expect(page.locator("nav a[aria-current=page]")).to_have_text("Models")
    shoot(page, screenshots, "model-list")


AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"


def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page (WCAG 2 A and AA rules)."""
    # (evaluated through the DevTools protocol: the page's Content-Security-Policy refuses inline scripts)
    page.evaluate(AXE.read_text() + ";0")
    found = page.evaluate(
        """async () => (await axe.run(document, {runOnly: {type: "tag",
             values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}})).violations"""
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def test_each_personas_main_page_has_no_serious_accessibility_violation(
    page: Page, live_server: Any, data_scientist: Any, risk_officer: Any, auditor: Any, case_officer: Any,
    skops_bytes: bytes, train_csv: bytes, eval_csv: bytes, screenshots: Path,
) -> None:  # fmt: skip
    base = live_server.url
    in_production(data_scientist, risk_officer, "credit-line", skops_bytes, train_csv, eval_csv)
    model = RegisteredModelFactory(name="churn-score", owner=data_scientist, risk_tier="medium")
    checked(make_version(data_scientist, model, skops_bytes, train_csv, eval_csv), data_scientist)
    validator = UserFactory(username="valerie", roles=[VALIDATORS])
    pages = {
        data_scientist: ["/", "/registry/models/", "/batches/"],
        risk_officer: ["/", "/admin/", "/admin/governance/versionreview/?status__exact=in_review"],
        auditor: ["/audit/"],
        validator: ["/"],
        case_officer: ["/", "/oversight/"],
    }
    problems = {}
    for person, paths in pages.items():
        page.context.clear_cookies()
        log_in(page, base, person)
        for path in paths:
            page.goto(f"{base}{path}")
            found = serious_violations(page)
            if found:
                problems[f"{person.username} {path}"] = found
    assert problems == {}, "\n".join(f"{k}: {v}" for k, v in problems.items())
    # the skip link is the first thing a keyboard reaches, and it leads to the content
    page.goto(f"{base}/")
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    shoot(page, screenshots, "home-validator")


def test_a_first_timer_saves_a_version_from_the_forms_own_example_files(
    page: Page, live_server: Any, data_scientist: Any, tmp_path: Path, screenshots: Path
) -> None:
    base = live_server.url
    RegisteredModelFactory(name="first-try", owner=data_scientist, risk_tier="low")
    log_in(page, base, data_scientist)
    form_url = f"{base}/registry/models/first-try/versions/new/"
    page.goto(form_url)
    # required sections are marked (the service's own list), each dataset is one visible control
    for name in ("artifact", "label_column", "intended_use", "caveats_and_recommendations"):
        expect(page.locator(f"label[for=id_{name}] .req")).to_have_count(1)
        expect(page.locator(f"#id_{name}")).to_have_attribute("aria-required", "true")
    expect(page.locator("label[for=id_model_details] .req")).to_have_count(0)
    expect(page.locator("#training-choice legend .req")).to_have_count(1)
    expect(page.locator("#training-choice input[name=training_source]")).to_have_count(0)  # nothing to pick yet
    shoot(page, screenshots, "version-form")
    files = {}
    for link, field in (
        ("example model", "artifact"),
        ("training CSV", "training_data"),
        ("evaluation CSV", "evaluation_data"),
    ):
        with page.expect_download() as download_info:
            page.locator("#form-intro").get_by_role("link", name=link).click()
        files[field] = tmp_path / download_info.value.suggested_filename
        download_info.value.save_as(files[field])
        page.set_input_files(f"#id_{field}", str(files[field]))
    page.fill("#id_label_column", "risk")
    page.locator("#sensitive-picker input[value=sex]").check()
    page.locator("#sensitive-picker input[value=age_group]").check()
    for name in ("intended_use", "out_of_scope_uses", "factors", "metrics", "ethical_considerations",
                 "caveats_and_recommendations"):  # fmt: skip
        page.fill(f"#id_{name}", f"The {name.replace('_', ' ')} of the example credit model, written out.")
    page.get_by_role("button", name="Save draft").click()
    page.wait_for_url(re.compile(r"/registry/models/first-try/versions/1/$"))
    version = ModelVersion.objects.get(registered_model__name="first-try")
    assert version.label_column == "risk" and version.sensitive_features == ["sex", "age_group"]
    assert version.evaluation_dataset.row_count == 300

    # with datasets in the registry: a choice per dataset, and only the chosen control shown
    page.goto(form_url)
    upload, pick = page.locator("#id_training_data"), page.locator("#id_training_dataset")
    expect(upload).to_be_visible()
    expect(pick).to_be_hidden()
    page.locator("#training-choice").get_by_label("A dataset in the registry").check()
    expect(pick).to_be_visible()
    expect(upload).to_be_hidden()
    shoot(page, screenshots, "version-form-registry")
