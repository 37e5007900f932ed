"""The override rate on the monitoring tab: how often people override the version's automated
decisions, overall, per stored window and per sensitive group (inputs or sent with the outcome)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring import selectors
from monitoring.models import MonitoringWindow
from tests.serving.conftest import rows

pytestmark = pytest.mark.django_db


def _serve(keyed, german, n: int) -> list[tuple[str, dict, int]]:
    """n one-row answers: (prediction id, the row sent, the model's decision)."""
    served = []
    for row in rows(german, n):
        body = keyed.post("/api/v1/models/credit-risk/predict", {"instances": [row]}, format="json").json()
        served.append((body["prediction_ids"][0], row, body["predictions"][0]))
    return served


def _review(keyed, pid: str, decision: int, *, override: bool) -> None:
    body = (
        {"action": "overridden", "final_decision": 1 - decision, "justification": "Income verified by phone."}
        if override
        else {"action": "confirmed", "justification": "Checked."}
    )
    response = keyed.post(f"/api/v1/predictions/{pid}/review", json.dumps(body), content_type="application/json")
    assert response.status_code == 201, response.content


def test_override_rate_counts_each_rows_latest_review_per_window_and_per_sensitive_group(
    production, keyed, german, client, auditor
):
    served = _serve(keyed, german, 6)
    overridden = {0, 2, 3}
    for i, (pid, _, decision) in enumerate(served):
        _review(keyed, pid, decision, override=i in overridden or i == 5)
    _review(keyed, served[5][0], served[5][2], override=False)  # overridden, then confirmed: counts as confirmed
    for i, (pid, _, _) in enumerate(served[:4]):
        sent = {"actual": 1, "sensitive": {"age_group": "young" if i % 2 else "old"}}
        assert keyed.post(f"/api/v1/predictions/{pid}/outcome", sent, format="json").status_code in (200, 201)
    now = timezone.now()
    window = MonitoringWindow.objects.create(
        version=production, start=now - timedelta(hours=1), end=now + timedelta(hours=1), profile_sha256="x"
    )
    empty = MonitoringWindow.objects.create(
        version=production, start=now - timedelta(days=2), end=now - timedelta(days=1), profile_sha256="x"
    )

    rates = selectors.override_rates(production, windows=[empty, window])

    assert (rates["reviewed"], rates["overridden"]) == (6, 3) and rates["rate"] == 0.5
    assert [(w["start"], w["reviewed"], w["overridden"]) for w in rates["windows"]] == [(window.start, 6, 3)]
    by_sex: dict[str, list[bool]] = {}
    for i, (_, row, _) in enumerate(served):
        by_sex.setdefault(row["sex"], []).append(i in overridden)
    assert rates["groups"]["sex"] == [
        {"group": sex, "reviewed": len(v), "overridden": sum(v), "rate": sum(v) / len(v)}
        for sex, v in sorted(by_sex.items())
    ]
    ages = {g["group"]: (g["reviewed"], g["overridden"]) for g in rates["groups"]["age_group"]}
    assert ages == {"old": (2, 2), "young": (2, 1), "(unknown)": (2, 0)}

    client.force_login(auditor)
    page = client.get(f"/monitoring/credit-risk/{production.version}/").content.decode()
    assert 'id="override-rate"' in page and "3 of 6 reviewed decisions overridden" in page
    assert "Per group of <em>age_group</em>" in page and "(unknown)" in page


def test_the_monitoring_tab_says_when_no_decision_was_reviewed(production, client, auditor):
    assert selectors.override_rates(production) == {
        "reviewed": 0,
        "overridden": 0,
        "rate": None,
        "windows": [],
        "groups": {},
    }
    client.force_login(auditor)
    page = client.get(f"/monitoring/credit-risk/{production.version}/").content.decode()
    assert "No decision of this version has been reviewed by a person yet." in page
