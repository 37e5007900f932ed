"""The workspace's "Find a decision" box, the decision page and the admin's box."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from tests.compliance.test_receipts import declined, draft_version  # noqa: F401
from tests.serving.conftest import client_key, keyed, production  # noqa: F401

pytestmark = pytest.mark.django_db


def test_an_auditor_finds_a_decision_by_business_key_and_sees_its_reasons_and_reviews(keyed, declined, auditor):  # noqa: F811
    keyed.post(
        f"/api/v1/predictions/{declined}/review",
        json.dumps({"action": "confirmed", "justification": "Looked at the file."}),
        content_type="application/json",
    )
    client = Client()
    client.force_login(auditor)
    assert "Find a decision" in client.get("/audit/").content.decode()
    found = client.get("/audit/decisions/", {"key": "2026-118"})
    assert found.status_code == 302 and found["Location"].endswith(f"/audit/decisions/{declined}/")
    page = client.get(found["Location"]).content.decode()
    assert "Loan duration too long" in page or "Credit amount too high" in page
    assert "Looked at the file." in page and "Confirmed" in page
    none = client.get("/audit/decisions/", {"key": "nope"})
    assert "No logged decision" in none.content.decode()
    receipt = client.get(f"/audit/decisions/{declined}/receipt.pdf")
    assert receipt.status_code == 200 and receipt.content.startswith(b"%PDF")


def test_data_scientists_do_not_see_decision_pages_and_officers_find_the_box_in_the_admin(
    declined,  # noqa: F811
    data_scientist,
    risk_officer,  # noqa: F811
):
    client = Client()
    client.force_login(data_scientist)
    assert client.get("/audit/decisions/", {"key": "2026-118"}).status_code == 403
    risk_officer.is_staff = True
    risk_officer.save()
    client.force_login(risk_officer)
    assert 'id="find-decision"' in client.get("/admin/").content.decode()


def test_the_decision_page_draws_the_explanation_as_a_waterfall_that_adds_up(keyed, declined, auditor):  # noqa: F811
    """The bars start at the base value and end at the output: what the explanation API gives,
    drawn (compliance.explanation_chart), each feature's contribution in its title."""
    import re

    explanation = keyed.get(f"/api/v1/predictions/{declined}/explanation").json()
    client = Client()
    client.force_login(auditor)
    page = client.get(f"/audit/decisions/{declined}/").content.decode()
    chart = page[page.index('<figure id="waterfall">') : page.index("</figure>")]
    assert f"{explanation['base_value']:.4f}" in chart and f"{explanation['value']:.4f}" in chart
    drawn = [float(v) for v in re.findall(r"<title>[^<:]+: ([+-][0-9.]+)</title>", chart)]
    contributions = explanation["contributions"]
    assert len(drawn) == min(len(contributions), 11)
    assert abs(explanation["base_value"] + sum(drawn) - explanation["value"]) < 1e-3
    biggest = max(contributions, key=lambda name: abs(contributions[name]))
    assert f"<title>{biggest}: " in chart
