"""What was live at a moment: the version in production then (from the Deployment rows), the
manifest its approvals bound, who approved (or recertified) it before that moment and the
evidence they saw (the round's checks and the hashes each decision bound). Reads only, from
evidence rows: the answer at a past moment does not change when the version's state does."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Q

from core import audit
from core.evidence import evidence
from core.models import AuditEvent
from governance.models import CheckRun, Decision, DecisionKind, Deployment
from lifecycle.models import RegisteredModel

BOUND = (
    "manifest_sha256",
    "artifact_sha256",
    "card_sha256",
    "checks_sha256",
    "profile_sha256",
    "personal_sha256",
    "shadow_sha256",
    "risk_tier",
)


def deployment_at(model: RegisteredModel, at: datetime) -> Deployment | None:
    """The deployment in force at `at`: deployed at or before it, not ended by then."""
    return (
        Deployment.objects.filter(registered_model=model, deployed_at__lte=at)
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=at))
        .select_related("version", "deployed_by")
        .order_by("-deployed_at", "-pk")
        .first()
    )


def _decision(d: Decision) -> dict[str, Any]:
    return {
        "id": d.pk,
        "kind": d.kind,
        "round": d.round,
        "by": d.actor_username,
        "at": d.created_at,
        "justification": d.justification,
        "override": d.override,
        "bound": {name: getattr(d, name) for name in BOUND},
        "sha256": evidence(d)[0]["sha256"],
    }


def _switch_at(model: RegisteredModel, at: datetime) -> dict[str, Any]:
    """The kill switch as the audit trail recorded it at `at` (governance.killswitch)."""
    events = AuditEvent.objects.filter(
        target_type="lifecycle.registeredmodel", target_id=str(model.pk), created_at__lte=at
    ).order_by("-seq")
    stop = events.filter(action__in=(audit.MODEL_STOPPED, audit.MODEL_RESUMED)).first()
    fallback = events.filter(action=audit.MODEL_FALLBACK_SET).first()
    return {
        "stopped": stop is not None and stop.action == audit.MODEL_STOPPED,
        "fallback_version": fallback.data.get("after") if fallback is not None else None,
    }


def live_at(model: RegisteredModel, at: datetime) -> dict[str, Any]:
    """The model's production version at `at`, with its approvals and their evidence; `version`
    is None when nothing was in production then."""
    deployment = deployment_at(model, at)
    answer: dict[str, Any] = {"model": model.name, "at": at, "kill_switch": _switch_at(model, at)}
    if deployment is None:
        return {**answer, "version": None, "message": f"{model.name} had no version in production at {at.isoformat()}."}
    version = deployment.version
    decided = Decision.objects.filter(version=version, created_at__lte=at).order_by("created_at", "pk")
    approvals = [d for d in decided if d.kind == DecisionKind.APPROVE]
    # The round in force: the latest round approved before the moment (a version resubmitted
    # later is approved again in a new round, and those approvals did not exist yet).
    in_force = max((d.round for d in approvals), default=None)
    approvals = [d for d in approvals if d.round == in_force]
    later = [d for d in decided if d.kind in (DecisionKind.RECERTIFY, DecisionKind.REINSTATE) and d.round == in_force]
    binding = [d for d in (*approvals, *later) if d.manifest_sha256]
    checks = CheckRun.objects.filter(version=version, round=in_force).order_by("kind") if in_force else []
    return {
        **answer,
        "version": version.version,
        "deployment": {
            "id": deployment.pk,
            "deployed_at": deployment.deployed_at,
            "deployed_by": deployment.deployed_by.username,
            "ended_at": deployment.ended_at,
            "sha256": evidence(deployment)[0]["sha256"],
        },
        "manifest_sha256": binding[-1].manifest_sha256 if binding else "",
        "artifact_sha256": version.artifact_sha256,
        "round": in_force,
        "approvers": [_decision(d) for d in approvals],
        "recertifications": [_decision(d) for d in later],
        "evidence": {
            "checks": [
                {
                    "id": c.pk,
                    "kind": c.kind,
                    "status": c.status,
                    "gating": c.gating,
                    "finished_at": c.finished_at,
                    "sha256": evidence(c)[0]["sha256"],
                }
                for c in checks
            ],
        },
    }
