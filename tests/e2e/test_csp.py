"""The Content-Security-Policy in Chromium: the main pages, for a logged-in person,
raise no CSP violation (the console error Chromium writes for each refused script, style, image or
frame), and their own scripts still work under it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from core.roles import DATA_SCIENTISTS, RISK_OFFICERS
from governance.policies import active_policy, update_policy
from lifecycle.models import Status
from tests.conftest import make_version
from tests.e2e.test_data_scientist import log_in
from tests.factories import RegisteredModelFactory, UserFactory
from tests.serving.conftest import checked

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_main_pages_raise_no_content_security_policy_error(
    page: Page, live_server: Any, skops_bytes: bytes, train_csv: bytes, eval_csv: bytes, screenshots: Path
) -> None:
    # One person with both working roles sees every page: the registry, the forms, the admin, the audit workspace.
    casey = UserFactory(username="casey", roles=[DATA_SCIENTISTS, RISK_OFFICERS], is_staff=True)
    update_policy(
        active_policy().pk,
        actor=None,
        justification="Set for this test.",
        changes={"max_fairness_difference": 1.0, "min_fairness_ratio": 0.0},
    )
    model = RegisteredModelFactory(name="loan-default", title="Loan default", owner=casey)
    in_review = checked(make_version(casey, model, skops_bytes, train_csv, eval_csv), casey)
    assert in_review.status == Status.IN_REVIEW
    checking = make_version(casey, model, skops_bytes, train_csv, eval_csv)
    type(checking).objects.filter(pk=checking.pk).update(status=Status.CHECKING)  # its page polls (a script)

    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"{page.url}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
    base = live_server.url
    log_in(page, base, casey)
    expect(page.locator("h1")).to_contain_text("casey")

    for path in (
        "/",
        "/registry/models/",
        f"/registry/models/{model.name}/",
        in_review.get_absolute_url(),
        checking.get_absolute_url(),
        f"/registry/models/{model.name}/versions/new/",
        "/admin/",
        f"/admin/governance/versionreview/{in_review.pk}/change/",
        "/audit/",
        f"/audit/models/{model.name}/",
        f"/audit/models/{model.name}/versions/{in_review.version}/",
    ):
        response = page.goto(base + path)
        assert response is not None and response.status == 200, path
        assert response.headers.get("content-security-policy"), path
        page.wait_for_load_state("networkidle")

    # The version form's own script (a static file now) still offers the dataset's columns.
    page.goto(f"{base}/registry/models/{model.name}/versions/new/")
    page.set_input_files(
        "#id_evaluation_data", files=[{"name": "eval.csv", "mimeType": "text/csv", "buffer": eval_csv}]
    )
    expect(page.locator("#sensitive-picker input[type=checkbox]").first).to_be_visible()

    # Swagger UI renders the schema (its start-up script is a file, its styles a stylesheet).
    page.goto(f"{base}/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Model governance API", timeout=20_000)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(screenshots / "90-api-docs-under-csp.png"), full_page=False)

    assert [e for e in errors if "Content Security Policy" in e] == []
    assert [e for e in errors if "Uncaught" in e] == []  # (page scripts ran without an exception)

    # The control: an inline style is refused, and the refusal is seen here.
    page.evaluate(
        "() => { const s = document.createElement('style'); s.textContent = 'body {}'; document.head.append(s); }"
    )
    page.wait_for_timeout(200)
    assert any("Content Security Policy" in e for e in errors)
