"""The demo's model risk management: a vendor model whose decisions a client logged
and whose outcomes it reported, a validation report with conditions on the high-tier credit
model, an overlay in force on the model in production, and a KPI. Called by seed_demo, through
the same services the API uses."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from governance import overlays, validation
from governance.models import Conclusion, OverlayKind
from lifecycle import services as lifecycle_services
from lifecycle.models import ModelKind, ModelVersion, RegisteredModel, Status
from monitoring import kpis
from serving import external, services
from serving.predict import Caller

SECTIONS = {
    "conceptual_soundness": "A regularised logistic regression on standardised numeric and one-hot encoded "
    "categorical features is a sound, interpretable choice for a binary credit outcome.",
    "data": "German credit data (1,000 applicants, 700 for training); no leakage of the label; the age and sex "
    "distributions match the evaluation split.",
    "outcomes_analysis": "ROC AUC and accuracy beat the decision-tree benchmark refit on the same data; one "
    "standard deviation more credit amount changes few decisions (see the benchmark page).",
    "limitations": "Small 1970s sample; the population of today's applicants differs.",
    "compensating_controls": "Human review of every adverse decision; monthly drift and KPI review.",
}


def register_vendor(dana: Any) -> RegisteredModel:
    return lifecycle_services.register_model(
        actor=dana,
        name="bureau-score",
        title="Credit bureau score (vendor)",
        description="The credit bureau's score, bought per application; an input of the bank's credit decisions.",
        kind=ModelKind.VENDOR,
        purpose="Decline applicants the bureau rates as bad risks before the bank's own scoring.",
        exposure=4_000_000,
        decisions_per_year=60_000,
        affected_people=55_000,
    )


def seed_vendor_traffic(rita: Any) -> int:
    """A client's key logs 30 of the vendor's decisions and reports their outcomes."""
    key, _ = services.create_api_key(actor=rita, name="loan-frontend")
    caller = Caller(user=None, api_key=key)
    decisions = ["good" if i % 4 else "bad" for i in range(30)]
    record = external.record_external_decisions(
        model_name="bureau-score",
        caller=caller,
        body={
            "instances": [{"bureau_id": f"B-{1000 + i}", "months_on_file": 12 + i} for i in range(30)],
            "decisions": decisions,
            "classes": ["bad", "good"],
        },
    )
    for row, decision in enumerate(decisions):
        actual = decision if row % 5 else ("bad" if decision == "good" else "good")
        services.record_outcome(record=record, row=row, actual=actual, reporter=caller.name, actor=None, api_key=key)
    return record.n_rows


def seed_validation(version: ModelVersion, validator: Any) -> None:
    """A validation report with conditions on the credit model under review (each condition
    becomes a finding)."""
    if version.status not in (Status.CHECKING, Status.IN_REVIEW):
        return
    validation.record_validation(
        version.pk,
        actor=validator,
        conclusion=Conclusion.FIT_WITH_CONDITIONS,
        sections=SECTIONS,
        conditions=[
            "Recalibrate on the bank's own applicants within 90 days of go-live.",
            "Report the approval and default rates among approved to the credit committee monthly.",
        ],
    )


def seed_overlay_and_kpi(model: RegisteredModel, rita: Any, owner: str) -> None:
    overlays.record_overlay(
        model.pk,
        actor=rita,
        kind=OverlayKind.OVERLAY,
        owner=owner,
        reason="Applicants of the new northern branch are outside the training population.",
        adjustment="Fast-track routing is switched off for northern-branch applications: a loan officer "
        "reviews each of them.",
        expires_at=timezone.now() + timedelta(days=90),
    )
    kpis.define_kpi(
        model.pk,
        actor=rita,
        name="approval-rate",
        metric="approval_rate",
        favourable=1,
        min_value=0.3,
        max_value=0.95,
        min_rows=20,
    )
