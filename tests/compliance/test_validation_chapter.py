"""The version report's validation chapter: the report in force, its sections,
conditions and the findings they opened, in the PDF and in its attached evidence."""

from __future__ import annotations

import pytest

from governance import workflow
from tests.compliance.test_reports import evidence_of, pdf_text, poppler_text
from tests.governance.conftest import SECTIONS, validated

pytestmark = pytest.mark.django_db


def test_the_version_report_has_the_validation_chapter(in_review, risk_officer, auditor, api_client) -> None:
    report = validated(in_review, "fit_with_conditions", ["Recalibrate on local data within 90 days."])
    workflow.approve_version(in_review.pk, actor=risk_officer, justification="Read the validation report.")
    api_client.force_authenticate(auditor)
    response = api_client.get(f"/api/v1/models/credit-risk/versions/{in_review.version}/report.pdf")
    assert response.status_code == 200
    for text in (pdf_text(response.content), poppler_text(response.content)):
        assert "Independent validation" in text
        assert f"Report #{report.pk} by valerie" in text and "fit with conditions" in text
        assert "(in force, bound in the version manifest)" in text
        assert SECTIONS["outcomes_analysis"] in text and SECTIONS["compensating_controls"] in text
        assert "Validation condition 1: Recalibrate on local data within 90 days." in text
    evidence = evidence_of(response.content)
    assert evidence["version"]["validation"]["in_force"] == report.pk
    (stored,) = evidence["version"]["validation"]["reports"]
    assert stored["conditions"] == ["Recalibrate on local data within 90 days."] and stored["findings"][0]["open"]


def test_the_chapter_says_when_there_is_no_report(served, auditor, api_client) -> None:
    api_client.force_authenticate(auditor)
    response = api_client.get(f"/api/v1/models/credit-risk/versions/{served.version}/report.pdf")
    assert "No validation report was written for this version." in pdf_text(response.content)
