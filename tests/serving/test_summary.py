"""The serving summary a report and the auditor's version page show (serving.selectors.
serving_summary, one GROUP BY folded in Python) is what the log's records say, counted one by one."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from serving import selectors
from serving.models import Disposition, PredictionLog
from tests.conftest import tamper
from tests.serving.conftest import rows


@pytest.mark.django_db
def test_the_summary_counts_what_the_records_say_per_outcome_day_and_reason(production, keyed, german):
    url = f"/api/v1/models/{production.registered_model.name}/predict"
    for n in (1, 2, 3):
        assert keyed.post(url, {"instances": rows(german, n)}, format="json").status_code == 200
    bad_row = {**rows(german, 1)[0], "duration": "soon"}
    for body in ({"instances": [bad_row]}, {"instances": [bad_row, bad_row]}, {"instances": []}):
        assert keyed.post(url, body, format="json").status_code == 400
    first = PredictionLog.objects.order_by("pk").first()
    assert first is not None
    tamper(PredictionLog, {"pk": first.pk}, created_at=first.created_at - timedelta(days=1))  # another day

    records = list(PredictionLog.objects.filter(version=production))
    assert {r.outcome for r in records} == {Disposition.OK, Disposition.INVALID}
    summary = selectors.serving_summary(version_id=production.pk)

    assert summary["requests"] == len(records)
    assert summary["rows_predicted"] == sum(r.n_rows for r in records if r.outcome == Disposition.OK)
    assert summary["by_outcome"] == {
        outcome: {
            "requests": sum(1 for r in records if r.outcome == outcome),
            "rows": sum(r.n_rows for r in records if r.outcome == outcome),
        }
        for outcome in sorted({r.outcome for r in records})
    }
    days = sorted({r.created_at.date() for r in records})
    assert len(days) == 2
    assert summary["per_day"] == [
        {
            "day": day.isoformat(),
            "requests": sum(1 for r in records if r.created_at.date() == day),
            "rows": sum(r.n_rows for r in records if r.created_at.date() == day and r.outcome == Disposition.OK),
            "refused": sum(1 for r in records if r.created_at.date() == day and r.outcome != Disposition.OK),
        }
        for day in days
    ]
    refusals = Counter((r.outcome, r.reason) for r in records if r.outcome != Disposition.OK)
    assert len(refusals) >= 2
    expected = sorted(refusals.items(), key=lambda item: (-item[1], item[0][1], item[0][0]))
    assert summary["top_refusal_reasons"] == [
        {"outcome": outcome, "reason": reason, "requests": n} for (outcome, reason), n in expected
    ]
    assert summary["shadow_replays"] == {"requests": 0, "rows": 0}
