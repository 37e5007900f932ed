"""The lifecycle state machine: the only code that writes ModelVersion.status.

Each function locks the version row, checks the actor's role and the current state, writes
the change with a conditional UPDATE (so SQLite, which ignores FOR UPDATE, is safe too),
records the Decision and the audit event in the same transaction, and enqueues work only on
commit. A refused call rolls back, then records the refusal in a transaction of its own."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from core import audit
from core.canonical import canonical_json, sha256_json
from core.errors import DomainError
from core.evidence import evidence
from core.roles import RISK_OFFICERS
from governance import bindings, jobs, materiality, rules
from governance.errors import WorkflowError
from governance.models import (
    FINISHED_CHECK_STATUSES,
    CheckKind,
    CheckRun,
    Decision,
    DecisionKind,
    Deployment,
)
from governance.policies import active_policy
from lifecycle.artifacts import read_verified_bytes
from lifecycle.errors import ArtifactIntegrityError, Forbidden, NotFound
from lifecycle.models import CARD_SECTIONS, ModelVersion, RegisteredModel, Status
from lifecycle.submission import REQUIRED_CARD_FIELDS, card_section_problem

CHECK_KINDS = (
    CheckKind.VALIDATION,
    CheckKind.FAIRNESS,
    CheckKind.REPRODUCIBILITY,
    CheckKind.ONNX,
    CheckKind.PROFILE,
)
ADVISORY_CHECKS = (CheckKind.ONNX,)  # reproducibility gates per tier: Policy.gates


class Refused(WorkflowError):
    """Raised inside a transition; the public function records it after the rollback."""

    def __init__(self, reason: str, *, version_pk: int, attempted: str, forbidden: bool = False):
        super().__init__(reason)
        self.version_pk, self.attempted, self.forbidden = version_pk, attempted, forbidden


def record_refusal(exc: Refused, *, actor: Any) -> DomainError:
    """The one way a refusal is recorded: after the refused transaction rolled back, in a
    transaction of its own, against the version the request named. Returns the error to raise."""
    with transaction.atomic():
        version = ModelVersion.objects.get(pk=exc.version_pk)
        audit.record(
            audit.ACTION_REFUSED,
            actor=actor,
            target=version,
            data={"attempted": exc.attempted, "reason": exc.message, "status": version.status},
        )
    return Forbidden(exc.message) if exc.forbidden else WorkflowError(exc.message)


def refuse_unless(rule: rules.Rule, version: ModelVersion, attempted: str) -> None:
    if not rule:
        raise Refused(rule.reason, version_pk=version.pk, attempted=attempted, forbidden=rule.forbidden)


def audited_refusals(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run a transition; if it is refused, its transaction rolls back and the refusal is then
    recorded (record_refusal), so a crafted request always leaves a trace."""

    @functools.wraps(func)
    def wrapper(target_id: int, *, actor: Any, **kwargs: Any) -> Any:
        try:
            return func(target_id, actor=actor, **kwargs)
        except Refused as exc:
            raise record_refusal(exc, actor=actor) from None

    return wrapper


def _transition(version: ModelVersion, *, to: str, actor: Any, **fields: Any) -> ModelVersion:
    """Move a locked version to `to` if the transition is allowed and the row still has the
    status we checked (conditional UPDATE: safe where FOR UPDATE is a no-op, as on SQLite)."""
    source = version.status
    refuse_unless(rules.can_move(version, to, actor), version, f"{source}->{to}")
    updated = ModelVersion.objects.filter(pk=version.pk, status=source).update(status=to, **fields)
    if updated != 1:
        raise WorkflowError(f"{version} changed while this request was deciding; reload and try again.")
    version.refresh_from_db()
    return version


def _end_deployments(deployments: QuerySet[Deployment], actor: Any, now: Any, reason: str) -> list[Deployment]:
    """End the open deployments among `deployments`; returns them as stored now (for evidence)."""
    open_ids = list(deployments.filter(ended_at__isnull=True).values_list("pk", flat=True))
    Deployment.objects.filter(pk__in=open_ids).update(ended_at=now, ended_by=actor, end_reason=reason)
    return list(Deployment.objects.filter(pk__in=open_ids))


def _locked(version_id: int) -> ModelVersion:
    version = ModelVersion.objects.select_for_update().select_related("registered_model").filter(pk=version_id).first()
    if version is None:
        raise NotFound("There is no such version.")
    return version


def _require_justification(version: ModelVersion, justification: str, attempted: str) -> str:
    text = (justification or "").strip()
    if not text:
        raise Refused("A written justification is required.", version_pk=version.pk, attempted=attempted)
    return text


def _decide(version: ModelVersion, *, kind: str, actor: Any, justification: str, **extra: Any) -> Decision:
    return Decision.objects.create(
        version=version,
        round=version.review_round,
        kind=kind,
        actor=actor,
        actor_username=actor.get_username(),
        submitter=version.submitted_by,
        creator_id=version.created_by_id,
        justification=justification,
        **extra,
    )


def _expiry(version: ModelVersion, policy: Any) -> Any:
    """When an approval or recertification given now lapses: the policy's period for the tier."""
    return timezone.now() + timedelta(days=policy.recertify_after_days(version.registered_model.effective_tier))


# --- data scientists -------------------------------------------------------------------
@audited_refusals
@transaction.atomic
def submit_version(version_id: int, *, actor: Any) -> ModelVersion:
    """draft -> checking, by a data scientist; a new review round with its checks, which are
    enqueued once this commits."""
    version = _locked(version_id)
    labels = {name: label for name, label, _ in CARD_SECTIONS}
    missing = [
        labels[name]
        for name in REQUIRED_CARD_FIELDS
        if card_section_problem(name, getattr(version.card, name))  # blank or a placeholder
    ]
    if missing:  # (an import, or a draft saved before these sections were required)
        raise Refused(
            "Write the model card's required sections first: "
            + ", ".join(missing)
            + " (each needs its own text: not blank, not a placeholder, at least three words).",
            version_pk=version.pk,
            attempted="draft->checking",
        )
    required = rules.missing_required_features(version)
    if required:
        raise Refused(
            f"Risk officers require the fairness check of {version.registered_model.name} to measure "
            f"{', '.join(required)}: add it to the version's sensitive features (one that is not in the evaluation "
            f"data cannot be measured). Missing, required: {', '.join(required)}.",
            version_pk=version.pk,
            attempted="draft->checking",
        )
    version = _transition(
        version,
        to=Status.CHECKING,
        actor=actor,
        submitted_by=actor,
        submitted_at=timezone.now(),
        review_round=version.review_round + 1,
    )
    policy = active_policy()
    checks = [
        CheckRun.objects.create(
            version=version,
            round=version.review_round,
            kind=kind,
            gating=kind not in ADVISORY_CHECKS and policy.gates(kind, tier=version.registered_model.effective_tier),
            policy=policy.values(),
        )
        for kind in CHECK_KINDS
    ]
    audit.record(
        audit.VERSION_SUBMITTED,
        actor=actor,
        target=version,
        data={
            "from": Status.DRAFT,
            "to": Status.CHECKING,
            "round": version.review_round,
            "artifact_sha256": version.artifact_sha256,
            "card_sha256": version.card.content_hash(),
            "checks": [c.kind for c in checks],
        },
    )
    for check in checks:
        jobs.after_commit("run_check", check.pk)
    return version


# --- the system ------------------------------------------------------------------------
@transaction.atomic
def record_check_result(
    check_id: int,
    *,
    status: str,
    metrics: dict[str, Any],
    inputs: dict[str, Any] | None = None,
    error: str = "",
    warning: str = "",
    started_at: Any = None,
) -> CheckRun | None:
    """Store a check's verdict once (a re-delivered task finds it finished and changes nothing);
    when every check of the round has finished, the version moves checking -> in_review."""
    if status not in FINISHED_CHECK_STATUSES:
        raise ValueError(f"not a final check status: {status}")
    check = CheckRun.objects.select_for_update().select_related("version").get(pk=check_id)
    version = _locked(check.version_id)
    if check.is_finished or check.round != version.review_round:
        return None
    now = timezone.now()
    started = started_at or check.started_at or now
    check.status, check.metrics, check.error, check.warning = status, metrics, error, warning
    check.inputs = inputs or check.inputs
    check.finished_at = now
    check.started_at = started
    check.duration_ms = int((now - started).total_seconds() * 1000)
    check.save()
    audit.record(
        audit.CHECK_FINISHED,
        actor=None,
        target=version,
        data={
            "check": check.kind,
            "round": check.round,
            "status": status,
            "warning": warning,
            "error": error[:2000],
            "policy": check.policy,
            "metrics_sha256": bindings.sha256_json(metrics),
            "evidence": evidence(check),
        },
    )
    pending = CheckRun.objects.filter(version=version, round=version.review_round).exclude(
        status__in=FINISHED_CHECK_STATUSES
    )
    if version.status == Status.CHECKING and not pending.exists():
        version = _transition(version, to=Status.IN_REVIEW, actor=None)
        summary = dict(
            CheckRun.objects.filter(version=version, round=version.review_round).values_list("kind", "status")
        )
        # the change's materiality against the parent (issue 29), evidence carried by this event
        change = materiality.record_classification(version, active_policy())
        audit.record(
            audit.VERSION_IN_REVIEW,
            actor=None,
            target=version,
            data={
                "from": Status.CHECKING,
                "to": Status.IN_REVIEW,
                "checks": summary,
                "change": {
                    "material": change.material,
                    "reasons": [r["rule"] for r in change.reasons if r["material"]],
                },
                "evidence": evidence(change),
            },
        )
        jobs.after_commit("notify", "ready_for_review", version.pk)
    return check


# --- risk officers ---------------------------------------------------------------------
@audited_refusals
@transaction.atomic
def approve_version(version_id: int, *, actor: Any, justification: str, override: bool = False) -> ModelVersion:
    """in_review -> approved once the tier's approvals are in (one for low/medium, two distinct
    officers for high); never by the submitter; a failed check needs override + justification.
    The approval binds the hashes of the artifact, the card and the check results it saw."""
    version = _locked(version_id)
    attempted = "approve"
    refuse_unless(rules.can_approve(version, actor), version, attempted)
    text = _require_justification(version, justification, attempted)
    failing = bindings.failing_checks(version)
    if failing and not override:
        raise Refused(
            "Checks did not pass (" + ", ".join(f"{c.kind}: {c.status}" for c in failing) + "); approving "
            "needs an explicit override with a justification.",
            version_pk=version.pk,
            attempted=attempted,
        )
    if Decision.objects.filter(
        version=version, round=version.review_round, kind=DecisionKind.APPROVE, actor=actor
    ).exists():
        raise Refused(
            "You already approved this version in this review round.", version_pk=version.pk, attempted=attempted
        )
    bound = bindings.current(version)
    policy = active_policy()
    required = rules.approvals_required(version)
    # (this approval binds what is there now, so it counts among the valid ones)
    completes = len(bindings.valid_approvals(version)) + 1 >= required
    expires_at = _expiry(version, policy) if completes else None
    decision = _decide(
        version,
        kind=DecisionKind.APPROVE,
        actor=actor,
        justification=text,
        override=bool(failing and override),
        approval_expires_at=expires_at,
        **bound,
        **bindings.shadow_binding(version),
    )
    valid = bindings.valid_approvals(version)
    audit.record(
        audit.VERSION_APPROVAL_RECORDED,
        actor=actor,
        target=version,
        data={
            "decision": decision.pk,
            "justification": text,
            "override": decision.override,
            "failed_checks": [c.kind for c in failing],
            "approvals": len(valid),
            "required": required,
            **bound,
            "evidence": evidence(decision),
        },
    )
    if len(valid) >= required:
        version = _transition(
            version,
            to=Status.APPROVED,
            actor=actor,
            approval_expires_at=expires_at,
            manifest_sha256=bound["manifest_sha256"],
        )
        audit.record(
            audit.VERSION_APPROVED,
            actor=actor,
            target=version,
            data={
                "from": Status.IN_REVIEW,
                "to": Status.APPROVED,
                "approvers": [d.actor_username for d in valid],
                "approval_expires_at": expires_at,
            },
        )
        jobs.after_commit("notify", "decided", version.pk, decision.pk)
    return version


def _close_review(version_id: int, *, actor: Any, justification: str, to: str, kind: str, action: str) -> ModelVersion:
    version = _locked(version_id)
    refuse_unless(rules.can_close_review(version, actor), version, kind)
    text = _require_justification(version, justification, kind)
    version = _transition(version, to=to, actor=actor)
    decision = _decide(version, kind=kind, actor=actor, justification=text)
    audit.record(
        action,
        actor=actor,
        target=version,
        data={
            "from": Status.IN_REVIEW,
            "to": to,
            "decision": decision.pk,
            "justification": text,
            "evidence": evidence(decision),
        },
    )
    jobs.after_commit("notify", "decided", version.pk, decision.pk)
    return version


@audited_refusals
@transaction.atomic
def reject_version(version_id: int, *, actor: Any, justification: str) -> ModelVersion:
    """in_review -> rejected (final), with a justification."""
    return _close_review(
        version_id,
        actor=actor,
        justification=justification,
        to=Status.REJECTED,
        kind=DecisionKind.REJECT,
        action=audit.VERSION_REJECTED,
    )


@audited_refusals
@transaction.atomic
def request_changes(version_id: int, *, actor: Any, justification: str) -> ModelVersion:
    """in_review -> draft: the data scientist edits and submits again (a new round)."""
    return _close_review(
        version_id,
        actor=actor,
        justification=justification,
        to=Status.DRAFT,
        kind=DecisionKind.REQUEST_CHANGES,
        action=audit.VERSION_CHANGES_REQUESTED,
    )


@audited_refusals
@transaction.atomic
def deploy_version(version_id: int, *, actor: Any, justification: str) -> ModelVersion:
    """approved -> production; the previous production version goes back to approved. The
    approvals must still bind the current artifact, card and checks, and the stored artifact
    must still have its recorded hash."""
    version = _locked(version_id)
    # Serialise deploys of one model: the lock on its row, then the partial unique constraint.
    model = RegisteredModel.objects.select_for_update().get(pk=version.registered_model_id)
    # The rule first: a refusal names the version that was asked for (and a non-officer's
    # request never reaches the production version's transition).
    refuse_unless(rules.can_deploy(version, actor), version, "approved->production")
    text = _require_justification(version, justification, "deploy")
    try:
        read_verified_bytes(version.artifact, version.artifact_sha256)
    except ArtifactIntegrityError as exc:
        raise Refused(exc.message, version_pk=version.pk, attempted="approved->production")
    now = timezone.now()
    previous = ModelVersion.objects.select_for_update().filter(registered_model=model, status=Status.PRODUCTION).first()
    replaced = None
    ended: list[Deployment] = []
    if previous is not None and previous.pk != version.pk:
        replaced = _transition(previous, to=Status.APPROVED, actor=actor)
        ended = _end_deployments(Deployment.objects.filter(registered_model=model), actor, now, "replaced")
    version = _transition(version, to=Status.PRODUCTION, actor=actor)
    deployment = Deployment.objects.create(registered_model=model, version=version, deployed_at=now, deployed_by=actor)
    decision = _decide(version, kind=DecisionKind.DEPLOY, actor=actor, justification=text)
    audit.record(
        audit.VERSION_DEPLOYED,
        actor=actor,
        target=version,
        data={
            "from": Status.APPROVED,
            "to": Status.PRODUCTION,
            "replaced_version": replaced.version if replaced else None,
            "decision": decision.pk,
            "justification": text,
            "artifact_sha256": version.artifact_sha256,
            "evidence": evidence(*ended, deployment, decision),
        },
    )
    return version


@transaction.atomic
def _rollback(model_id: int, *, actor: Any, justification: str) -> ModelVersion:
    model = RegisteredModel.objects.select_for_update().get(pk=model_id)
    current = ModelVersion.objects.select_for_update().filter(registered_model=model, status=Status.PRODUCTION).first()
    anchor = current or model.versions.order_by("-version").first()
    if anchor is None:
        raise NotFound(f"{model} has no versions.")
    if current is None:
        refuse_unless(rules.role_rule(actor, RISK_OFFICERS, "roll back models"), anchor, "rollback")
        raise Refused(f"{model} has no production version to roll back.", version_pk=anchor.pk, attempted="rollback")
    refuse_unless(rules.can_roll_back(current, actor), current, "rollback")
    text = _require_justification(current, justification, "rollback")
    earlier = rules.rollback_target(model, current)
    assert earlier is not None  # (can_roll_back found it under the model's lock)
    try:
        read_verified_bytes(earlier.version.artifact, earlier.version.artifact_sha256)
    except ArtifactIntegrityError as exc:
        raise Refused(exc.message, version_pk=current.pk, attempted="rollback")
    now = timezone.now()
    current = _transition(current, to=Status.APPROVED, actor=actor)
    ended = _end_deployments(Deployment.objects.filter(registered_model=model), actor, now, "rolled_back")
    restored = _transition(_locked(earlier.version_id), to=Status.PRODUCTION, actor=actor)
    deployment = Deployment.objects.create(registered_model=model, version=restored, deployed_at=now, deployed_by=actor)
    decision = _decide(current, kind=DecisionKind.ROLLBACK, actor=actor, justification=text)
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


def rollback_model(model_id: int, *, actor: Any, justification: str) -> ModelVersion:
    """production -> approved for the current version; the previously deployed version that is
    still approved becomes production again. Returns the restored version."""
    try:
        return _rollback(model_id, actor=actor, justification=justification)
    except Refused as exc:
        raise record_refusal(exc, actor=actor) from None


@audited_refusals
@transaction.atomic
def suspend_version(version_id: int, *, actor: Any, reason: str, changed: list[str] | None = None) -> ModelVersion:
    """approved or production -> suspended: not served from this commit on. By the system (a void
    approval, a failed integrity check) or by a risk officer with a written reason. A production
    version's deployment ends, so the model has no production version until one is deployed."""
    version = _locked(version_id)
    RegisteredModel.objects.select_for_update().get(pk=version.registered_model_id)
    attempted = f"{version.status}->{Status.SUSPENDED}"
    refuse_unless(rules.can_suspend(version, actor), version, attempted)
    text = _require_justification(version, reason, attempted)
    source = version.status
    now = timezone.now()
    version = _transition(version, to=Status.SUSPENDED, actor=actor, suspended_reason=text, suspended_at=now)
    ended = _end_deployments(Deployment.objects.filter(version=version), actor, now, "suspended")
    decision = None
    if actor is not None:
        decision = _decide(version, kind=DecisionKind.SUSPEND, actor=actor, justification=text)
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
    jobs.after_commit("notify", "suspended", version.pk)
    return version


@audited_refusals
@transaction.atomic
def reinstate_version(version_id: int, *, actor: Any, justification: str) -> ModelVersion:
    """suspended -> approved once the cause is gone (the approvals bind what is there again and
    the stored artifact has its recorded hash), by as many distinct risk officers as the tier's
    approvals, never the version's creator or submitter."""
    version = _locked(version_id)
    attempted = "reinstate"
    refuse_unless(rules.can_reinstate(version, actor), version, attempted)
    text = _require_justification(version, justification, attempted)
    try:
        read_verified_bytes(version.artifact, version.artifact_sha256)
    except ArtifactIntegrityError as exc:
        raise Refused(exc.message, version_pk=version.pk, attempted=attempted)
    bound = bindings.current(version)
    decision = _decide(version, kind=DecisionKind.REINSTATE, actor=actor, justification=text, **bound)
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
    version = _transition(
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
def retire_version(version_id: int, *, actor: Any, justification: str) -> ModelVersion:
    """approved or production -> retired: it stops serving when this commits."""
    version = _locked(version_id)
    RegisteredModel.objects.select_for_update().get(pk=version.registered_model_id)
    refuse_unless(rules.can_retire(version, actor), version, "retire")
    text = _require_justification(version, justification, "retire")
    source = version.status
    version = _transition(version, to=Status.RETIRED, actor=actor)
    ended = _end_deployments(Deployment.objects.filter(version=version), actor, timezone.now(), "retired")
    decision = _decide(version, kind=DecisionKind.RETIRE, actor=actor, justification=text)
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
def recertify_version(version_id: int, *, actor: Any, justification: str, snapshot: dict[str, Any]) -> ModelVersion:
    """Renew an approval over a frozen snapshot of the monitoring evidence and open findings:
    once as many distinct risk officers as the tier's approvals have recertified, the approval
    runs for the policy's period again (a version suspended because it expired is approved)."""
    version = _locked(version_id)
    attempted = "recertify"
    refuse_unless(rules.can_recertify(version, actor), version, attempted)
    text = _require_justification(version, justification, attempted)
    policy = active_policy()
    required = policy.approvals_for(version.registered_model.effective_tier)
    officers = rules.pending_recertifiers(version) | {actor.pk}
    completes = len(officers) >= required
    expires_at = _expiry(version, policy) if completes else None
    # (stored exactly as hashed: dates become their text, as in every audit event)
    snapshot = json.loads(canonical_json(snapshot))
    snapshot_sha256 = sha256_json(snapshot)
    bound = bindings.current(version)
    decision = _decide(
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
        version = _transition(
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
    jobs.after_commit("notify", "decided", version.pk, decision.pk)
    return version
