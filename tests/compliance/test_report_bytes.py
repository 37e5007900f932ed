"""Every PDF report is the same bytes for the same inputs: no generation time and no requester in
it, only the inputs' own moment (the trail's last change, the decision's proof, the registration).
Rendered twice with the clock moving between the two renders, and by two different people (the
incident report: tests/compliance/test_incidents.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from compliance import controls, receipts, report_context, services, techdoc
from core import audit
from governance.policies import active_policy, update_policy
from serving.models import PredictionLog
from tests.compliance.test_reports import evidence_of, pdf_text

pytestmark = pytest.mark.django_db


def twice(render: Callable[[Any], bytes], first: Any, second: Any) -> tuple[bytes, bytes]:
    """Render, let the clock move past a second (every time printed to the second would change),
    render again as someone else."""
    one = render(first)
    time.sleep(1.1)
    return one, render(second)


def test_the_reading_actions_are_the_codes_the_services_write() -> None:
    assert set(report_context.READING_ACTIONS) == {
        audit.REPORT_GENERATED,
        audit.AUDIT_VERIFIED,
        audit.EXPORT_DOWNLOADED,
        audit.REPORT_JOB_STARTED,
        audit.REPORT_JOB_FINISHED,
    }


def test_each_report_rendered_twice_gives_the_same_bytes(served, auditor, risk_officer) -> None:
    now = timezone.now()
    since, until = now - timedelta(days=1), now + timedelta(days=1)
    record = PredictionLog.objects.filter(version=served, outcome="ok").order_by("pk").first()
    assert record is not None
    reports: dict[str, Callable[[Any], bytes]] = {
        "version": lambda who: services.generate_version_report(served.pk, actor=who).pdf,
        "technical documentation": lambda who: techdoc.generate_technical_documentation(served.pk, actor=who).pdf,
        "period": lambda who: services.generate_period_report(since=since, until=until, actor=who).pdf,
        "receipt": lambda who: receipts.generate_receipt(record, 0, actor=who).pdf,
        "controls": lambda who: controls.export_controls(served.registered_model_id, now, actor=who).pdf,
    }
    for name, render in reports.items():
        first, second = twice(render, auditor, risk_officer)
        assert first.startswith(b"%PDF-"), name
        assert first == second, f"the {name} report differs between two renders of the same inputs"
        text = pdf_text(first)
        assert "As of" in text or "as of" in text, name
        assert auditor.username not in text, name  # who asked is in the download's audit event, not the bytes


def test_a_change_of_the_inputs_changes_the_bytes_and_moves_the_as_of(served, risk_officer) -> None:
    before = services.generate_version_report(served.pk, actor=risk_officer).pdf
    update_policy(
        active_policy().pk, actor=risk_officer, justification="Drift alert lowered.", changes={"psi_alert": 0.2}
    )
    after = services.generate_version_report(served.pk, actor=risk_officer).pdf
    assert before != after
    moved, first = evidence_of(after)["report"], evidence_of(before)["report"]
    assert moved["as_of_event"] > first["as_of_event"]
    assert "generated_at" not in moved and "generated_by" not in moved
    # the chain is reported up to the report's point, not up to this download's own event
    assert evidence_of(after)["audit_verification"]["chain"]["events_checked"] == moved["as_of_event"]
