"""Writes of governance other than status changes: a model's effective risk tier."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from core import audit, jobs
from core.actors import Actor, person
from core.errors import Forbidden
from core.evidence import evidence
from core.roles import RISK_OFFICERS, has_role
from governance import integrity, rules, selectors
from governance.errors import WorkflowError
from governance.models import CheckRun, FairnessRequirement
from lifecycle.models import ModelVersion, RegisteredModel, RiskTier

# the background jobs this module sends (core.jobs; a task registers each)
RUN_CHECK = jobs.job("run_check", __name__)


def require(rule: rules.Rule) -> None:
    """Raise a rule's no: 403 for the person's role, else 409 (its code when it has one)."""
    if rule:
        return
    if rule.forbidden:
        raise Forbidden(rule.reason)
    raise WorkflowError(rule.reason, code=rule.code or None)


@transaction.atomic
def set_risk_tier(model_id: int, *, actor: Actor, tier: str, justification: str) -> RegisteredModel:
    """A risk officer sets the model's effective tier (the data scientist only proposed one), with
    a justification; never the model's owner nor a creator or submitter of its versions
    (rules.can_set_tier). Approvals bind the tier, so approved and production versions approved
    for another tier are suspended at once (governance.integrity) until officers reinstate them."""
    if not has_role(actor, RISK_OFFICERS):
        raise Forbidden("Only risk officers set a model's effective risk tier.")
    if tier not in RiskTier.values:
        raise WorkflowError(f"{tier!r} is not a risk tier ({', '.join(RiskTier.values)}).", field="tier", status=400)
    text = (justification or "").strip()
    if not text:
        raise WorkflowError("A written justification is required.", field="justification", status=400)
    model = RegisteredModel.objects.select_for_update().get(pk=model_id)
    require(rules.can_set_tier(model, actor))
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


MAX_REQUIRED_FEATURES = 20


@transaction.atomic
def set_fairness_requirements(
    model_id: int, *, actor: Actor, features: list[str], waivers: dict[str, dict[str, str]], justification: str
) -> FairnessRequirement:
    """A risk officer (never the model's owner nor a creator or submitter of its versions) sets the
    sensitive features every version's fairness check must measure, and waives small groups,
    each with its own justification. Versions are held to it at submission."""
    model = RegisteredModel.objects.select_for_update().get(pk=model_id)
    rule = rules.can_set_fairness_requirements(model, actor)
    if rule.forbidden:
        require(rule)
    names = features if isinstance(features, list) else None
    if names is None or not all(isinstance(f, str) and f.strip() and len(f) <= 200 for f in names):
        raise WorkflowError("features must be a list of column names.", field="features", status=400)
    names = list(dict.fromkeys(f.strip() for f in names))
    if len(names) > MAX_REQUIRED_FEATURES:
        raise WorkflowError(f"At most {MAX_REQUIRED_FEATURES} required features.", field="features", status=400)
    cleaned = _clean_waivers(waivers)
    text = (justification or "").strip()
    if not text:
        raise WorkflowError("A written justification is required.", field="justification", status=400)
    require(rule)
    requirement = FairnessRequirement.objects.filter(registered_model=model).first()
    before = {"features": requirement.features, "waivers": requirement.waivers} if requirement else None
    if requirement is None:
        requirement = FairnessRequirement(registered_model=model)
    requirement.features, requirement.waivers = names, cleaned
    requirement.justification, requirement.updated_by = text, person(actor)
    requirement.save()
    audit.record(
        audit.FAIRNESS_REQUIREMENTS_SET,
        actor=actor,
        target=model,
        data={
            "before": before,
            "features": names,
            "waivers": cleaned,
            "justification": text,
            "evidence": evidence(requirement),
        },
    )
    return requirement


def _clean_waivers(waivers: Any) -> dict[str, dict[str, str]]:
    """{feature: {group: justification}}, every justification written."""
    if waivers is None:
        return {}
    if not isinstance(waivers, dict):
        raise WorkflowError("waivers must be an object {feature: {group: justification}}.", field="waivers", status=400)
    cleaned: dict[str, dict[str, str]] = {}
    for feature, groups in waivers.items():
        if not isinstance(groups, dict):
            raise WorkflowError(
                f"waivers[{feature!r}] must be an object {{group: justification}}.", field="waivers", status=400
            )
        for group, why in groups.items():
            text = why.strip() if isinstance(why, str) else ""
            if not text:
                raise WorkflowError(
                    f"The waiver of group {group!r} of {feature!r} needs its justification.",
                    field="waivers",
                    status=400,
                )
            cleaned.setdefault(str(feature), {})[str(group)] = text[:2000]
    return cleaned


def stuck_checks(version: ModelVersion) -> list[CheckRun]:
    """The version's checks nobody is working on: queued longer than CHECK_RESEND_AFTER_SECONDS,
    or running past the task time limit (what the beat sweep sends again; officers see them)."""
    from django.conf import settings as conf

    return list(
        selectors.stranded_checks(
            now=timezone.now(),
            queued_for=conf.CHECK_RESEND_AFTER_SECONDS,
            running_for=conf.CELERY_TASK_TIME_LIMIT + conf.CHECK_RESEND_AFTER_SECONDS,
        ).filter(version=version)
    )


@transaction.atomic
def requeue_checks(version_id: int, *, actor: Actor) -> list[int]:
    """A risk officer sends the version's stuck checks again (audited); a check run twice is
    recorded once. Refused when none is stuck."""
    if not has_role(actor, RISK_OFFICERS):
        raise WorkflowError("Only risk officers re-queue checks.", status=403)
    version = ModelVersion.objects.select_for_update().get(pk=version_id)
    stuck = stuck_checks(version)
    if not stuck:
        raise WorkflowError(f"No check of {version} is stuck: nothing to re-queue.")
    ids = [c.pk for c in stuck]
    audit.record(
        audit.CHECKS_REQUEUED,
        actor=actor,
        target=version,
        data={"checks": [{"id": c.pk, "kind": c.kind, "status": c.status} for c in stuck]},
    )
    for check_id in ids:
        jobs.after_commit(RUN_CHECK, check_id)
    return ids
