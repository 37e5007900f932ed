"""A low-volume model is monitored: a window closes when its time is up and it holds the policy's
row count, or at the policy's longest window, whichever comes first; so a model answering 50
rows a day gets a (longer) window and a drift alert on shifted traffic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from governance.models import Finding
from governance.policies import active_policy, update_policy
from lifecycle import demo_data
from monitoring import services
from monitoring.models import MonitoringWindow
from serving.models import PredictionLog
from tests.conftest import tamper

pytestmark = pytest.mark.django_db

DAY0 = datetime(2026, 3, 2, tzinfo=UTC)


def shifted_rows(german, n):
    frame = german[1][demo_data.NUMERIC + demo_data.CATEGORICAL].head(n)
    return [{**row, "credit_amount": row["credit_amount"] * 3} for row in frame.to_dict(orient="records")]


def send_on(keyed, rows, day):
    """Answer `rows` now, then date their records `day` (a low-volume model's one day of traffic)."""
    before = set(PredictionLog.objects.values_list("pk", flat=True))
    for i in range(0, len(rows), 25):
        response = keyed.post("/api/v1/models/credit-risk/predict", {"instances": rows[i : i + 25]}, format="json")
        assert response.status_code == 200, response.content
    new = set(PredictionLog.objects.values_list("pk", flat=True)) - before
    tamper(PredictionLog, {"pk__in": new}, created_at=day + timedelta(hours=10))


def test_a_fifty_rows_a_day_model_gets_a_window_and_a_drift_alert(production, keyed, german, settings):
    settings.MONITOR_WINDOW = "1d"
    update_policy(
        active_policy().pk,
        actor=None,
        changes={"monitor_min_rows": 150, "monitor_max_window_days": 10},
        justification="Test setting.",
    )
    rows = shifted_rows(german, 200)
    for day in range(4):
        send_on(keyed, rows[day * 50 : (day + 1) * 50], DAY0 + timedelta(days=day))
    stored = services.monitor(now=DAY0 + timedelta(days=5))
    assert [(w.start, w.end, w.rows) for w in stored] == [(DAY0, DAY0 + timedelta(days=3), 150)]
    window = stored[0]
    assert window.level == "alert"
    assert any(a["subject"] == "credit_amount" and a["level"] == "alert" for a in window.alerts)
    assert Finding.objects.filter(version=production, key="drift:credit_amount").exists()
    # the fourth day's 50 rows wait for more traffic, or for the longest window
    assert services.monitor(now=DAY0 + timedelta(days=5)) == []
    later = services.monitor(now=DAY0 + timedelta(days=14))
    assert [(w.start, w.end, w.rows) for w in later] == [(DAY0 + timedelta(days=3), DAY0 + timedelta(days=13), 50)]
    assert later[0].level != "alert"  # too few rows to alert on: reported, never alerted
    assert MonitoringWindow.objects.filter(version=production).count() == 2


def test_the_row_floor_is_a_policy_value_shown_on_the_monitoring_page(production, client, risk_officer):
    update_policy(active_policy().pk, actor=None, changes={"monitor_min_rows": 123}, justification="Test setting.")
    client.force_login(risk_officer)
    page = client.get(f"/monitoring/{production.registered_model.name}/{production.version}/")
    assert page.status_code == 200
    assert 'id="window-rule"' in page.content.decode() and "123 rows" in page.content.decode()
