"""A version after its deployment: roll back, suspend, reinstate, retire, recertify. The same
shape as every verb in governance.workflow (lock, ask the rule, move the status through
workflow.transition, record the Decision and the audit event, enqueue on commit); a refused
call rolls back, then records the refusal."""

from __future__ import annotations

import json
from typing import Any

from django.db import transaction
from django.utils import timezone

from core import audit, jobs
from core.actors import Actor, person, pk_of
from core.canonical import canonical_json, sha256_json
from core.evidence import evidence
from core.roles import RISK_OFFICERS
from governance import bindings, rules
from governance.models import (
    Decision,
    DecisionKind,
    Deployment,
)
from governance.policies import active_policy
from governance.workflow import (
    Refused,
    approval_expiry,
    audited_refusals,
    decide,
    end_deployments,
    locked,
    record_refusal,
    refuse_unless,
    require_justification,
    transition,
)
from lifecycle.artifacts import read_verified_bytes
from lifecycle.errors import ArtifactIntegrityError, NotFound
from lifecycle.models import ModelVersion, RegisteredModel, Status

# the background jobs this module sends (core.jobs; a task registers each)
NOTIFY = jobs.job("notify", __name__)


@transaction.atomic
def _rollback(model_id: int, *, actor: Actor, justification: str) -> ModelVersion:
    model = RegisteredModel.objects.select_for_update().get(pk=model_id)
    current = ModelVersion.objects.select_for_update().filter(registered_model=model, status=Status.PRODUCTION).first()
    anchor = current or model.versions.order_by("-version").first()
    if anchor is None:
        raise NotFound(f"{model} has no versions.")
    if current is None:
        refuse_unless(rules.role_rule(actor, RISK_OFFICERS, "roll back models"), anchor, "rollback")
        raise Refused(f"{model} has no production version to roll back.", version_pk=anchor.pk, attempted="rollback")
    refuse_unless(rules.can_roll_back(current, actor), current, "rollback")
    text = require_justification(current, justification, "rollback")
    earlier = rules.rollback_target(model, current)
    assert earlier is not None  # (can_roll_back found it under the model's lock)
    try:
        read_verified_bytes(earlier.version.artifact, earlier.version.artifact_sha256)
    except ArtifactIntegrityError as exc:
        raise Refused(exc.message, version_pk=current.pk, attempted="rollback")
    now = timezone.now()
    current = transition(current, to=Status.APPROVED, actor=actor)
    ended = end_deployments(Deployment.objects.filter(registered_model=model), actor, now, "rolled_back")
    restored = transition(locked(earlier.version_id), to=Status.PRODUCTION, actor=actor)
    deployment = Deployment.objects.create(
        registered_model=model, version=restored, deployed_at=now, deployed_by=person(actor)
    )
    decision = decide(current, kind=DecisionKind.ROLLBACK, actor=actor, justification=text)
    audit.record(
        audit.MODEL_ROLLED_BACK,
        actor=actor,
        target=restored,
        data={
            "from_version": current.version,
            "to_version": restored.version,
            "decision": decision.pk,
            "justification": text,
            "evidence": evidence(*ended, deployment, decision),
        },
    )
    return restored


def rollback_model(model_id: int, *, actor: Actor, justification: str) -> ModelVersion:
    """production -> approved for the current version; the previously deployed version that is
    still approved becomes production again. Returns the restored version."""
    try:
        return _rollback(model_id, actor=actor, justification=justification)
    except Refused as exc:
        raise record_refusal(exc, actor=actor) from None


@audited_refusals
@transaction.atomic
def suspend_version(version_id: int, *, actor: Actor, reason: str, changed: list[str] | None = None) -> ModelVersion:
    """approved or production -> suspended: not served from this commit on. By the system (a void
    approval, a failed integrity check) or by a risk officer with a written reason. A production
    version's deployment ends, so the model has no production version until one is deployed."""
    version = locked(version_id)
    RegisteredModel.objects.select_for_update().get(pk=version.registered_model_id)
    attempted = f"{version.status}->{Status.SUSPENDED}"
    refuse_unless(rules.can_suspend(version, actor), version, attempted)
    text = require_justification(version, reason, attempted)
    source = version.status
    now = timezone.now()
    version = transition(version, to=Status.SUSPENDED, actor=actor, suspended_reason=text, suspended_at=now)
    ended = end_deployments(Deployment.objects.filter(version=version), actor, now, "suspended")
    decision = None
    if actor is not None:
        decision = decide(version, kind=DecisionKind.SUSPEND, actor=actor, justification=text)
    audit.record(
        audit.VERSION_SUSPENDED,
        actor=actor,
        target=version,
        data={
            "from": source,
            "to": Status.SUSPENDED,
            "reason": text,
            "changed": changed or [],
            "decision": decision.pk if decision else None,
            "evidence": evidence(*ended, *([decision] if decision else [])),
        },
        # a suspension for tampering never re-baselines the changed row: verification keeps
        # naming it until reinstatement (once the cause is gone) records the row again
        prove_target=not changed,
    )
    jobs.after_commit(NOTIFY, "suspended", version.pk)
    return version


@audited_refusals
@transaction.atomic
def reinstate_version(version_id: int, *, actor: Actor, justification: str) -> ModelVersion:
    """suspended -> approved once the cause is gone (the approvals bind what is there again and
    the stored artifact has its recorded hash), by as many distinct risk officers as the tier's
    approvals, never the version's creator or submitter."""
    version = locked(version_id)
    attempted = "reinstate"
    refuse_unless(rules.can_reinstate(version, actor), version, attempted)
    text = require_justification(version, justification, attempted)
    try:
        read_verified_bytes(version.artifact, version.artifact_sha256)
    except ArtifactIntegrityError as exc:
        raise Refused(exc.message, version_pk=version.pk, attempted=attempted)
    bound = bindings.current(version)
    decision = decide(version, kind=DecisionKind.REINSTATE, actor=actor, justification=text, **bound)
    officers = set(
        Decision.objects.filter(
            version=version, kind=DecisionKind.REINSTATE, created_at__gte=version.suspended_at
        ).values_list("actor_id", flat=True)
    )
    required = active_policy().approvals_for(version.registered_model.effective_tier)
    data = {
        "decision": decision.pk,
        "justification": text,
        "reinstatements": len(officers),
        "required": required,
        "evidence": evidence(decision),
    }
    if len(officers) < required:
        audit.record(audit.VERSION_REINSTATEMENT_RECORDED, actor=actor, target=version, data=data)
        return version
    version = transition(
        version, to=Status.APPROVED, actor=actor, suspended_reason="", manifest_sha256=bound["manifest_sha256"]
    )
    audit.record(
        audit.VERSION_REINSTATED,
        actor=actor,
        target=version,
        data={"from": Status.SUSPENDED, "to": Status.APPROVED, **data},
    )
    return version


@audited_refusals
@transaction.atomic
def retire_version(version_id: int, *, actor: Actor, justification: str) -> ModelVersion:
    """approved or production -> retired: it stops serving when this commits."""
    version = locked(version_id)
    RegisteredModel.objects.select_for_update().get(pk=version.registered_model_id)
    refuse_unless(rules.can_retire(version, actor), version, "retire")
    text = require_justification(version, justification, "retire")
    source = version.status
    version = transition(version, to=Status.RETIRED, actor=actor)
    ended = end_deployments(Deployment.objects.filter(version=version), actor, timezone.now(), "retired")
    decision = decide(version, kind=DecisionKind.RETIRE, actor=actor, justification=text)
    audit.record(
        audit.VERSION_RETIRED,
        actor=actor,
        target=version,
        data={
            "from": source,
            "to": Status.RETIRED,
            "decision": decision.pk,
            "justification": text,
            "evidence": evidence(*ended, decision),
        },
    )
    return version


@audited_refusals
@transaction.atomic
def recertify_version(version_id: int, *, actor: Actor, justification: str, snapshot: dict[str, Any]) -> ModelVersion:
    """Renew an approval over a frozen snapshot of the monitoring evidence and open findings:
    once as many distinct risk officers as the tier's approvals have recertified, the approval
    runs for the policy's period again (a version suspended because it expired is approved)."""
    version = locked(version_id)
    attempted = "recertify"
    refuse_unless(rules.can_recertify(version, actor), version, attempted)
    text = require_justification(version, justification, attempted)
    policy = active_policy()
    required = policy.approvals_for(version.registered_model.effective_tier)
    officers = rules.pending_recertifiers(version) | {pk_of(actor)}
    completes = len(officers) >= required
    expires_at = approval_expiry(version, policy) if completes else None
    # (stored exactly as hashed: dates become their text, as in every audit event)
    snapshot = json.loads(canonical_json(snapshot))
    snapshot_sha256 = sha256_json(snapshot)
    bound = bindings.current(version)
    decision = decide(
        version,
        kind=DecisionKind.RECERTIFY,
        actor=actor,
        justification=text,
        snapshot=snapshot,
        snapshot_sha256=snapshot_sha256,
        approval_expires_at=expires_at,
        **bound,
    )
    data = {
        "decision": decision.pk,
        "justification": text,
        "snapshot_sha256": snapshot_sha256,
        "recertifications": len(officers),
        "required": required,
        "evidence": evidence(decision),
    }
    if not completes:
        audit.record(audit.VERSION_RECERTIFICATION_RECORDED, actor=actor, target=version, data=data)
        return version
    source = version.status
    if source == Status.SUSPENDED:
        version = transition(
            version,
            to=Status.APPROVED,
            actor=actor,
            suspended_reason="",
            approval_expires_at=expires_at,
            manifest_sha256=bound["manifest_sha256"],
        )
    else:
        ModelVersion.objects.filter(pk=version.pk).update(
            approval_expires_at=expires_at, expiry_reminded_at=None, manifest_sha256=bound["manifest_sha256"]
        )
        version.refresh_from_db()
    audit.record(
        audit.VERSION_RECERTIFIED,
        actor=actor,
        target=version,
        data={"from": source, "to": version.status, "approval_expires_at": expires_at, **data},
    )
    jobs.after_commit(NOTIFY, "decided", version.pk, decision.pk)
    return version
