"""Content-Security-Policy on every page, and nothing inline in the templates that are
served, so the strict policy holds (tests/e2e/test_csp.py checks the same in Chromium)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.django_db

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
EXPECTED = (
    "default-src 'self'",
    "img-src 'self' data:",
    "style-src 'self'",
    "script-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)


def directives(response: Any) -> set[str]:
    return {d.strip() for d in response["Content-Security-Policy"].split(";")}


@pytest.mark.parametrize("path", ["/", "/registry/models/", "/admin/", "/api/docs/", "/audit/"])
def test_pages_carry_the_policy(client: Any, risk_officer: Any, path: str) -> None:
    client.force_login(risk_officer)
    response = client.get(path)
    assert response.status_code == 200
    assert directives(response) >= set(EXPECTED)


def test_the_login_page_and_the_api_carry_it_too(client: Any, api_client: Any, auditor: Any) -> None:
    assert directives(client.get("/login/")) >= set(EXPECTED)
    api_client.force_authenticate(auditor)
    assert directives(api_client.get("/api/v1/models/")) >= set(EXPECTED)


def test_the_api_docs_load_their_start_up_script_from_a_url(client: Any, auditor: Any) -> None:
    client.force_login(auditor)
    page = client.get("/api/docs/").content.decode()
    assert "<style" not in page
    assert re.search(r'<script src="/api/docs/\?[^"]*script=', page)
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()


def test_no_served_template_has_inline_script_or_style() -> None:
    """Reports are rendered to PDF, never served: they keep their styles."""
    offenders = []
    for path in TEMPLATES.rglob("*.html"):
        if "reports" in path.relative_to(TEMPLATES).parts:
            continue
        text = path.read_text()
        for pattern in (
            r"<script(?![^>]*\bsrc=)(?![^>]*application/(ld\+)?json)",
            r"<style",
            r"\sstyle=",
            r"\son[a-z]+=",
        ):
            if re.search(pattern, text):
                offenders.append(f"{path.relative_to(TEMPLATES)}: {pattern}")
    assert offenders == []
