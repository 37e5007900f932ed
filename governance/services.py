"""Writes of governance other than status changes: a model's effective risk tier."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from core import audit
from core.errors import Forbidden
from core.roles import RISK_OFFICERS, has_role
from governance import integrity
from governance.errors import WorkflowError
from lifecycle.models import RegisteredModel, RiskTier


@transaction.atomic
def set_risk_tier(model_id: int, *, actor: Any, tier: str, justification: str) -> RegisteredModel:
    """A risk officer sets the model's effective tier (the data scientist only proposed one), with
    a justification. Approvals bind the tier, so approved and production versions approved for
    another tier are suspended at once (governance.integrity) until officers reinstate them."""
    if not has_role(actor, RISK_OFFICERS):
        raise Forbidden("Only risk officers set a model's effective risk tier.")
    if tier not in RiskTier.values:
        raise WorkflowError(f"{tier!r} is not a risk tier ({', '.join(RiskTier.values)}).", field="tier")
    text = (justification or "").strip()
    if not text:
        raise WorkflowError("A written justification is required.", field="justification")
    model = RegisteredModel.objects.select_for_update().get(pk=model_id)
    before = model.effective_tier
    model.effective_risk_tier = tier
    model.save(update_fields=["effective_risk_tier"])
    audit.record(
        audit.RISK_TIER_SET,
        actor=actor,
        target=model,
        data={"proposed": model.risk_tier, "before": before, "after": tier, "justification": text},
    )
    integrity.suspend_void_versions(model_id=model.pk)
    return model
