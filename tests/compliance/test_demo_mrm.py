"""The demo's model risk management: a vendor model with decisions, outcomes and
live performance, a validation report with conditions, an overlay in force; and the trail verifies."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.utils import timezone

from governance import overlays
from governance.models import Finding, ValidationReport
from lifecycle.models import RegisteredModel
from monitoring.external import external_performance


@pytest.mark.django_db(transaction=True)
def test_the_demo_has_a_vendor_model_a_validation_with_conditions_and_an_overlay_and_verifies(
    eager_tasks: None,
) -> None:
    call_command("seed_demo", stdout=io.StringIO())
    vendor = RegisteredModel.objects.get(name="bureau-score")
    assert vendor.kind == "vendor" and not vendor.versions.exists()
    assert [d.depends_on.name for d in RegisteredModel.objects.get(name="credit-risk").dependencies.all()] == [
        "bureau-score"
    ]
    now = timezone.now()
    live = external_performance(vendor, since=now.replace(year=now.year - 1), until=now)
    assert live["decisions"] == 30 and live["performance"]["n_outcomes"] == 30
    report = ValidationReport.objects.get(version__registered_model__name="credit-risk")
    assert report.conclusion == "fit_with_conditions" and len(report.conditions) == 2
    assert Finding.objects.filter(key__startswith=f"validation:{report.pk}:").count() == 2
    prescreen = RegisteredModel.objects.get(name="loan-prescreen")
    assert overlays.in_force(prescreen.pk).count() == 1
    out = io.StringIO()
    call_command("verify_audit", stdout=out)  # CommandError (exit 1) on anything broken
    assert "Suspended" not in out.getvalue() and "Verification PASSED" in out.getvalue(), out.getvalue()
