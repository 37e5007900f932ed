"""The demo's model risk management (seed_demo): the production model's effective tier confirmed,
a previous-generation version approved and designated as the fallback, a serious incident registered on
a few of its decisions (the evidence freeze is a real signed checkpoint), and the controls no
evidence query can prove here attested, so that most of its control map is proven."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from compliance import controls, incidents
from compliance.models import IncidentSeverity
from governance import bindings, killswitch, workflow
from governance import services as governance_services
from lifecycle.models import ModelVersion, Status
from serving.models import Disposition, PredictionLog

ATTESTED = {
    "EUAIA-11": "Annex IV technical documentation kept in the model file MRM-2026-031; regenerated at each release.",
    "SR26-2-VAL": "Independent validation by the model validation unit (report MV-2026-14, fit for use).",
    "SS1-23-P4": "Validated independently of the developers (MV-2026-14); the validator reports to the CRO.",
}


def seed_demo_risk_management(fallback_id: int, *, officer: Any, second_officer: Any) -> dict[str, Any]:
    """Only when the model is in production and the fallback candidate in review (checks run
    in-process; with a real broker they are still queued and nothing here is done)."""
    challenger = ModelVersion.objects.select_related("registered_model").get(pk=fallback_id)
    model = challenger.registered_model
    production = ModelVersion.objects.filter(registered_model=model, status=Status.PRODUCTION).first()
    if production is None or challenger.status != Status.IN_REVIEW:
        return {}
    governance_services.set_risk_tier(
        model.pk,
        actor=officer,
        tier=model.effective_tier,
        justification="Confirmed at the annual inventory review: routing only, no adverse decision without a person.",
    )
    workflow.approve_version(
        challenger.pk,
        actor=second_officer,
        justification="The previous-generation forest, revalidated: approved to serve as the pre-approved fallback.",
        override=bool(bindings.failing_checks(challenger)),
    )
    killswitch.designate_fallback(
        model.pk,
        actor=officer,
        version_number=challenger.version,
        justification="Pre-approved fallback (PRA SS1/23 findings, Nov. 2025): answers if the model is stopped.",
    )
    answered = PredictionLog.objects.filter(version=production, outcome=Disposition.OK).order_by("pk").first()
    ids = [f"{answered.public_id}.{row}" for row in range(min(2, answered.n_rows))] if answered else []
    try:
        incident = incidents.register_incident(
            actor=officer,
            model=model.name,
            severity=IncidentSeverity.SERIOUS,
            aware_at=timezone.now().isoformat(),  # the complaints arrived after the decisions above
            summary=(
                "Two applicants were routed away from the fast-track queue because of a stale age field in the "
                "branch system; both were refused by the manual queue and complained."
            ),
            corrective_actions=(
                "Branch feed fixed; the two applications re-assessed by a case officer; fallback designated."
            ),
            prediction_ids=ids,
        )
    except incidents.IncidentError:  # no checkpoint signing key (DEBUG=False without one): no freeze, no incident
        incident = None
    for control_id, statement in ATTESTED.items():
        controls.attest_control(model.pk, control_id, actor=officer, statement=statement)
    return {"incident": incident, "fallback": challenger}
