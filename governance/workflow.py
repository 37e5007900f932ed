"""The lifecycle state machine: the only code that writes ModelVersion.status.

Each function locks the version row, checks the actor's role and the current state, writes
the change with a conditional UPDATE (so SQLite, which ignores FOR UPDATE, is safe too),
records the Decision and the audit event in the same transaction, and enqueues work only on
commit. A refused call rolls back, then records the refusal in a transaction of its own.

The verbs after deployment (roll back, suspend, reinstate, retire, recertify) are
governance.operations; they move the status through transition() here."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar, cast

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from core import audit, jobs
from core.actors import Actor, person, pk_of
from core.errors import DomainError
from core.evidence import evidence
from governance import bindings, materiality, rules
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

# the background jobs this module sends (core.jobs; a task registers each)
RUN_CHECK = jobs.job("run_check", __name__)
NOTIFY = jobs.job("notify", __name__)

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


# a workflow function taking (target_id, *, actor, ...)
F = TypeVar("F", bound=Callable[..., Any])


def record_refusal(exc: Refused, *, actor: Actor) -> DomainError:
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


def audited_refusals(func: F) -> F:
    """Run a transition; if it is refused, its transaction rolls back and the refusal is then
    recorded (record_refusal), so a crafted request always leaves a trace."""

    @functools.wraps(func)
    def wrapper(target_id: int, *, actor: Actor, **kwargs: Any) -> Any:
        try:
            return func(target_id, actor=actor, **kwargs)
        except Refused as exc:
            raise record_refusal(exc, actor=actor) from None

    return cast(F, wrapper)  # the same signature: mypy checks every caller's actor


def transition(version: ModelVersion, *, to: str, actor: Actor, **fields: Any) -> ModelVersion:
    """Move a locked version to `to` if the transition is allowed and the row still has the
    status we checked (conditional UPDATE: safe where FOR UPDATE is a no-op, as on SQLite)."""
    source = version.status
    refuse_unless(rules.can_move(version, to, actor), version, f"{source}->{to}")
    updated = ModelVersion.objects.filter(pk=version.pk, status=source).update(status=to, **fields)
    if updated != 1:
        raise WorkflowError(f"{version} changed while this request was deciding; reload and try again.")
    version.refresh_from_db()
    return version


def end_deployments(deployments: QuerySet[Deployment], actor: Actor, now: Any, reason: str) -> list[Deployment]:
    """End the open deployments among `deployments`; returns them as stored now (for evidence)."""
    open_ids = list(deployments.filter(ended_at__isnull=True).values_list("pk", flat=True))
    Deployment.objects.filter(pk__in=open_ids).update(ended_at=now, ended_by=actor, end_reason=reason)
    return list(Deployment.objects.filter(pk__in=open_ids))


def locked(version_id: int) -> ModelVersion:
    version = ModelVersion.objects.select_for_update().select_related("registered_model").filter(pk=version_id).first()
    if version is None:
        raise NotFound("There is no such version.")
    return version


def require_justification(version: ModelVersion, justification: str, attempted: str) -> str:
    text = (justification or "").strip()
    if not text:
        raise Refused("A written justification is required.", version_pk=version.pk, attempted=attempted)
    return text


def decide(version: ModelVersion, *, kind: str, actor: Actor, justification: str, **extra: Any) -> Decision:
    return Decision.objects.create(
        version=version,
        round=version.review_round,
        kind=kind,
        actor=person(actor),
        actor_username=person(actor).get_username(),
        submitter=version.submitted_by,
        creator_id=version.created_by_id,
        justification=justification,
        **extra,
    )


def approval_expiry(version: ModelVersion, policy: Any) -> Any:
    """When an approval or recertification given now lapses: the policy's period for the tier."""
    return timezone.now() + timedelta(days=policy.recertify_after_days(version.registered_model.effective_tier))


# --- data scientists -------------------------------------------------------------------
@audited_refusals
@transaction.atomic
def submit_version(version_id: int, *, actor: Actor) -> ModelVersion:
    """draft -> checking, by a data scientist; a new review round with its checks, which are
    enqueued once this commits."""
    version = locked(version_id)
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
    version = transition(
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
        jobs.after_commit(RUN_CHECK, check.pk)
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
    version = locked(check.version_id)
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
        version = transition(version, to=Status.IN_REVIEW, actor=None)
        summary = dict(
            CheckRun.objects.filter(version=version, round=version.review_round).values_list("kind", "status")
        )
        # the change's materiality against the parent, evidence carried by this event
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
        jobs.after_commit(NOTIFY, "ready_for_review", version.pk)
    return check


# --- risk officers ---------------------------------------------------------------------
@audited_refusals
@transaction.atomic
def approve_version(version_id: int, *, actor: Actor, justification: str, override: bool = False) -> ModelVersion:
    """in_review -> approved once the tier's approvals are in (one for low/medium, two distinct
    officers for high); never by the submitter; a failed check needs override + justification.
    The approval binds the hashes of the artifact, the card and the check results it saw."""
    version = locked(version_id)
    attempted = "approve"
    refuse_unless(rules.can_approve(version, actor), version, attempted)
    text = require_justification(version, justification, attempted)
    failing = bindings.failing_checks(version)
    if failing and not override:
        raise Refused(
            "Checks did not pass (" + ", ".join(f"{c.kind}: {c.status}" for c in failing) + "); approving "
            "needs an explicit override with a justification.",
            version_pk=version.pk,
            attempted=attempted,
        )
    if Decision.objects.filter(
        version=version, round=version.review_round, kind=DecisionKind.APPROVE, actor_id=pk_of(actor)
    ).exists():
        raise Refused(
            "You already approved this version in this review round.", version_pk=version.pk, attempted=attempted
        )
    bound = bindings.current(version)
    policy = active_policy()
    required = rules.approvals_required(version)
    # (this approval binds what is there now, so it counts among the valid ones)
    completes = len(bindings.valid_approvals(version)) + 1 >= required
    expires_at = approval_expiry(version, policy) if completes else None
    decision = decide(
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
        version = transition(
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
        jobs.after_commit(NOTIFY, "decided", version.pk, decision.pk)
    return version


def _close_review(
    version_id: int, *, actor: Actor, justification: str, to: str, kind: str, action: str
) -> ModelVersion:
    version = locked(version_id)
    refuse_unless(rules.can_close_review(version, actor), version, kind)
    text = require_justification(version, justification, kind)
    version = transition(version, to=to, actor=actor)
    decision = decide(version, kind=kind, actor=actor, justification=text)
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
    jobs.after_commit(NOTIFY, "decided", version.pk, decision.pk)
    return version


@audited_refusals
@transaction.atomic
def reject_version(version_id: int, *, actor: Actor, justification: str) -> ModelVersion:
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
def request_changes(version_id: int, *, actor: Actor, justification: str) -> ModelVersion:
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
def deploy_version(version_id: int, *, actor: Actor, justification: str) -> ModelVersion:
    """approved -> production; the previous production version goes back to approved. The
    approvals must still bind the current artifact, card and checks, and the stored artifact
    must still have its recorded hash."""
    version = locked(version_id)
    # Serialise deploys of one model: the lock on its row, then the partial unique constraint.
    model = RegisteredModel.objects.select_for_update().get(pk=version.registered_model_id)
    # The rule first: a refusal names the version that was asked for (and a non-officer's
    # request never reaches the production version's transition).
    refuse_unless(rules.can_deploy(version, actor), version, "approved->production")
    text = require_justification(version, justification, "deploy")
    try:
        read_verified_bytes(version.artifact, version.artifact_sha256)
    except ArtifactIntegrityError as exc:
        raise Refused(exc.message, version_pk=version.pk, attempted="approved->production")
    now = timezone.now()
    previous = ModelVersion.objects.select_for_update().filter(registered_model=model, status=Status.PRODUCTION).first()
    replaced = None
    ended: list[Deployment] = []
    if previous is not None and previous.pk != version.pk:
        replaced = transition(previous, to=Status.APPROVED, actor=actor)
        ended = end_deployments(Deployment.objects.filter(registered_model=model), actor, now, "replaced")
    version = transition(version, to=Status.PRODUCTION, actor=actor)
    deployment = Deployment.objects.create(
        registered_model=model, version=version, deployed_at=now, deployed_by=person(actor)
    )
    decision = decide(version, kind=DecisionKind.DEPLOY, actor=actor, justification=text)
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
