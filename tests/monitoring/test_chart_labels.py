"""The PSI charts' window labels: to the minute, or to the second when windows share a minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from monitoring.charts import psi_multiples


def windows(step: timedelta) -> list[SimpleNamespace]:
    start = datetime(2026, 11, 30, 6, 56, 0, tzinfo=UTC)
    return [
        SimpleNamespace(start=start + i * step, drift={"age": {"psi": 0.01 * i}}, prediction_drift={"psi": 0.0})
        for i in range(2)
    ]


def test_windows_within_one_minute_are_labelled_to_the_second():
    chart = psi_multiples(windows(timedelta(seconds=30)), warn=0.1, alert=0.25)[0]
    assert "11-30 06:56:00" in chart and "11-30 06:56:30" in chart


def test_windows_minutes_apart_are_labelled_to_the_minute():
    chart = psi_multiples(windows(timedelta(hours=1)), warn=0.1, alert=0.25)[0]
    assert "11-30 06:56" in chart and "11-30 07:56" in chart and "06:56:00" not in chart
