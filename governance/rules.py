"""The workflow's preconditions, written once: each predicate says whether `actor` may take an
action on a version now, and why not. governance.workflow enforces them (and records a refusal);
the review page, the admin and the auditor pages show their buttons from the same predicates.
Reads only: cheap enough for a page, and the workflow asks again under its row locks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q
from django.utils import timezone

from core.actors import Actor, pk_of
from core.roles import AUDITORS, CASE_OFFICERS, DATA_SCIENTISTS, RISK_OFFICERS, has_role, roles_of
from governance import bindings
from governance.models import Decision, DecisionKind, Deployment, FairnessRequirement, Finding, Severity
from governance.policies import active_policy
from lifecycle.models import ModelVersion, RegisteredModel, Status


@dataclass(frozen=True)
class Rule:
    """A yes, or a no with its reason; `forbidden` marks a no for the person's role (403) rather
    than for the version's state (409)."""

    allowed: bool
    reason: str = ""
    forbidden: bool = False
    code: str = ""  # names a refusal that has its own error (governance.errors)

    def __bool__(self) -> bool:
        return self.allowed


YES = Rule(True)

SYSTEM = "system"
SYSTEM_OR_OFFICERS = "the system or risk officers"

# (from, to) -> who may make that transition: the lifecycle table of docs/design.md.
TRANSITIONS: dict[tuple[str, str], str] = {
    (Status.DRAFT, Status.CHECKING): DATA_SCIENTISTS,
    (Status.CHECKING, Status.IN_REVIEW): SYSTEM,
    (Status.IN_REVIEW, Status.APPROVED): RISK_OFFICERS,
    (Status.IN_REVIEW, Status.REJECTED): RISK_OFFICERS,
    (Status.IN_REVIEW, Status.DRAFT): RISK_OFFICERS,
    (Status.APPROVED, Status.PRODUCTION): RISK_OFFICERS,
    (Status.PRODUCTION, Status.APPROVED): RISK_OFFICERS,
    (Status.APPROVED, Status.RETIRED): RISK_OFFICERS,
    (Status.PRODUCTION, Status.RETIRED): RISK_OFFICERS,
    (Status.APPROVED, Status.SUSPENDED): SYSTEM_OR_OFFICERS,
    (Status.PRODUCTION, Status.SUSPENDED): SYSTEM_OR_OFFICERS,
    (Status.SUSPENDED, Status.APPROVED): RISK_OFFICERS,
    (Status.SUSPENDED, Status.RETIRED): RISK_OFFICERS,
}


def can_move(version: ModelVersion, to: str, actor: Actor) -> Rule:
    """The lifecycle table: may the version move from its status to `to`, and may `actor` move it."""
    role = TRANSITIONS.get((version.status, to))
    if role is None:
        return no(f"{version} is {status_label(version.status)}; it cannot move to {status_label(to)}.")
    if role == SYSTEM or (role == SYSTEM_OR_OFFICERS and actor is None):
        return YES
    officers = RISK_OFFICERS if role == SYSTEM_OR_OFFICERS else role
    if not has_role(actor, officers):
        return Rule(False, f"Only members of {officers} may move a version to {status_label(to)}.", forbidden=True)
    return YES


def status_label(status: str) -> str:
    return status.replace("_", " ")


def no(reason: str) -> Rule:
    return Rule(False, reason)


def role_rule(actor: Actor, role: str, doing: str) -> Rule:
    if has_role(actor, role):
        return YES
    return Rule(False, f"Only members of {role} {doing}.", forbidden=True)


def can_submit(version: ModelVersion, actor: Actor) -> Rule:
    return can_move(version, Status.CHECKING, actor)


def _in_review(version: ModelVersion, doing: str) -> Rule:
    if version.status != Status.IN_REVIEW:
        return no(f"{version} is {status_label(version.status)}; only versions in review can be {doing}.")
    return YES


def can_approve(version: ModelVersion, actor: Actor) -> Rule:
    """In review, by a risk officer who did not submit it and has not approved it this round,
    with no open high finding."""
    rule = _in_review(version, "approved") and role_rule(actor, RISK_OFFICERS, "approve versions")
    if not rule:
        return rule
    return (
        _four_eyes(version, actor, DecisionKind.APPROVE)
        and no_open_high_finding(version, "approved")
        and validation_allows_approval(version, actor)
    )


def open_high_findings(version: ModelVersion) -> list[Finding]:
    return list(Finding.objects.filter(version=version, severity=Severity.HIGH, closed_at__isnull=True))


def no_open_high_finding(version: ModelVersion, doing: str) -> Rule:
    """An open high finding blocks approval, deployment and recertification until it is closed."""
    blocking = open_high_findings(version)
    if blocking:
        names = "; ".join(f"#{f.pk} {f.title}" for f in blocking[:3])
        return no(f"{version} has {len(blocking)} open high finding(s) ({names}): it cannot be {doing} until closed.")
    return YES


EXPIRED_PREFIX = "The approval expired"


def approval_expired(version: ModelVersion, now: Any = None) -> bool:
    expires = version.approval_expires_at
    return expires is not None and expires <= (now or timezone.now())


def suspended_for_expiry(version: ModelVersion) -> bool:
    return version.status == Status.SUSPENDED and version.suspended_reason.startswith(EXPIRED_PREFIX)


def _four_eyes(version: ModelVersion, actor: Actor, kind: str) -> Rule:
    """Neither the version's creator nor its submitter decides on it, and one decision of a kind
    per officer per round."""
    if version.submitted_by_id == pk_of(actor):
        return Rule(False, "You submitted this version, so you cannot approve it (four-eyes rule).", forbidden=True)
    if version.created_by_id == pk_of(actor):
        return Rule(False, "You created this version, so you cannot approve it (four-eyes rule).", forbidden=True)
    if Decision.objects.filter(version=version, round=version.review_round, kind=kind, actor_id=pk_of(actor)).exists():
        done = "approved" if kind == DecisionKind.APPROVE else "asked to reinstate"
        return no(f"You already {done} this version in this review round.")
    return YES


def can_close_review(version: ModelVersion, actor: Actor) -> Rule:
    """Reject or request changes: in review, by a risk officer."""
    return _in_review(version, "rejected or sent back") and role_rule(actor, RISK_OFFICERS, "decide on reviews")


def approvals_progress(version: ModelVersion) -> tuple[int, int]:
    """(valid approvals of the current round, approvals the model's tier needs)."""
    return len(bindings.valid_approvals(version)), approvals_required(version)


def can_deploy(version: ModelVersion, actor: Actor) -> Rule:
    """Approved, by a risk officer, with the tier's count of approvals that still bind what is
    there now (the workflow also re-reads the artifact's bytes before it deploys)."""
    rule = role_rule(actor, RISK_OFFICERS, "deploy versions")
    if not rule:
        return rule
    if version.status != Status.APPROVED:
        return no(f"{version} is {status_label(version.status)}; only approved versions can be deployed.")
    valid, required = approvals_progress(version)
    if valid < required:
        return no(
            f"{version} has {valid} valid approval(s) of {required} required: an approval is void "
            "when the artifact, model card or check results changed after it was given."
        )
    if approval_expired(version):
        return no(f"{version}'s approval expired on {version.approval_expires_at:%Y-%m-%d}: recertify it first.")
    return no_open_high_finding(version, "deployed")


def rollback_target(model: RegisteredModel, current: ModelVersion) -> Deployment | None:
    """The latest earlier deployment, other than `current`, whose version is still approved."""
    return (
        Deployment.objects.filter(registered_model=model, ended_at__isnull=False, version__status=Status.APPROVED)
        .exclude(version=current)
        .select_related("version")
        .order_by("-deployed_at", "-pk")
        .first()
    )


def can_roll_back(version: ModelVersion, actor: Actor) -> Rule:
    """From this production version back to the previously deployed version still approved."""
    rule = role_rule(actor, RISK_OFFICERS, "roll back models")
    if not rule:
        return rule
    if version.status != Status.PRODUCTION:
        return no(f"{version.registered_model} has no production version to roll back.")
    target = rollback_target(version.registered_model, version)
    if target is None:
        return no(f"{version.registered_model} has no earlier deployed version that is still approved.")
    valid, required = approvals_progress(target.version)
    if valid < required:
        return no(
            f"{target.version} was deployed before, but its approval no longer holds ({valid} valid approval(s) "
            f"of {required} required): it cannot be restored."
        )
    return YES


def can_suspend(version: ModelVersion, actor: Actor) -> Rule:
    return can_move(version, Status.SUSPENDED, actor)


def can_reinstate(version: ModelVersion, actor: Actor) -> Rule:
    """Suspended, by a risk officer who neither created nor submitted it, once the cause is gone:
    the approvals bind what is there now again."""
    rule = can_move(version, Status.APPROVED, actor) if version.status == Status.SUSPENDED else None
    if rule is None:
        return no(f"{version} is {status_label(version.status)}; only suspended versions are reinstated.")
    if not rule:
        return rule
    rule = _four_eyes(version, actor, DecisionKind.REINSTATE)
    if not rule:
        return rule
    valid, required = approvals_progress(version)
    if valid < required:
        return no(
            f"{version}'s approval is still void ({valid} valid approval(s) of {required} required): restore what "
            "changed, or submit a new version."
        )
    if suspended_for_expiry(version):
        return no(f"{version} was suspended because its approval expired: recertify it instead.")
    return YES


def last_certified_at(version: ModelVersion) -> Any:
    """When the current approval period began: the decision that completed the approval or the
    last recertification (None before any)."""
    return (
        Decision.objects.filter(version=version, approval_expires_at__isnull=False)
        .order_by("-created_at", "-pk")
        .values_list("created_at", flat=True)
        .first()
    )


def pending_recertifiers(version: ModelVersion) -> set[int]:
    """The officers who recertified since the current approval period began."""
    decisions = Decision.objects.filter(version=version, kind=DecisionKind.RECERTIFY)
    since = last_certified_at(version)
    if since is not None:
        decisions = decisions.filter(created_at__gt=since)
    return set(decisions.values_list("actor_id", flat=True))


def can_recertify(version: ModelVersion, actor: Actor) -> Rule:
    """Approved or production (or suspended because the approval expired), by risk officers as
    for approval, never the creator or submitter, with the approval's bindings intact and no
    open high finding."""
    rule = role_rule(actor, RISK_OFFICERS, "recertify versions")
    if not rule:
        return rule
    if version.status not in (Status.APPROVED, Status.PRODUCTION) and not suspended_for_expiry(version):
        return no(
            f"{version} is {status_label(version.status)}; only approved or production versions (or versions suspended "
            "because their approval expired) are recertified."
        )
    if pk_of(actor) in (version.submitted_by_id, version.created_by_id):
        return Rule(False, "You created or submitted this version, so you cannot recertify it (four-eyes rule).", True)
    if pk_of(actor) in pending_recertifiers(version):
        return no("You already recertified this version; another risk officer must too.")
    valid, required = approvals_progress(version)
    if valid < required:
        return no(f"{version}'s approval is void ({valid} valid approval(s) of {required} required).")
    return no_open_high_finding(version, "recertified")


def can_shadow(version: ModelVersion, actor: Actor) -> Rule:
    """Risk officers put an in-review or approved version of a model that has a production
    version in shadow (one running shadow per version)."""
    rule = role_rule(actor, RISK_OFFICERS, "put versions in shadow")
    if not rule:
        return rule
    if version.status not in (Status.IN_REVIEW, Status.APPROVED):
        return no(f"{version} is {status_label(version.status)}; only in-review or approved versions run in shadow.")
    if not ModelVersion.objects.filter(registered_model=version.registered_model, status=Status.PRODUCTION).exists():
        return no(f"{version.registered_model.name} has no production version whose traffic could be replayed.")
    if version.shadows.filter(ended_at__isnull=True).exists():
        return no(f"{version} is in shadow already.")
    return YES


def can_end_shadow(version: ModelVersion, actor: Actor) -> Rule:
    rule = role_rule(actor, RISK_OFFICERS, "end shadows")
    if not rule:
        return rule
    return YES if version.shadows.filter(ended_at__isnull=True).exists() else no(f"{version} is not in shadow.")


def can_retire(version: ModelVersion, actor: Actor) -> Rule:
    rule = role_rule(actor, RISK_OFFICERS, "retire versions")
    if rule and version.status not in (Status.APPROVED, Status.PRODUCTION, Status.SUSPENDED):
        return no(
            f"{version} is {status_label(version.status)}; only approved, production or suspended versions are retired."
        )
    return rule


# --- segregation of duties (docs/decisions-duties.md) -------------------------------------------
OWN_WORK = "own_work"  # the refusal's code: nobody judges their own work (409)


def not_own_work(version: ModelVersion, actor: Actor, doing: str) -> Rule:
    """The version's creator and submitter never judge it: its outcomes, reviews, approvals."""
    pk = pk_of(actor)
    if pk is not None and pk in (version.created_by_id, version.submitted_by_id):
        did = "created" if pk == version.created_by_id else "submitted"
        return Rule(False, f"You {did} {version}, so you cannot {doing} (segregation of duties).", code=OWN_WORK)
    return YES


def can_set_tier(model: RegisteredModel, actor: Actor, what: str = "risk tier") -> Rule:
    """A risk officer who neither owns the model nor created or submitted any of its versions."""
    rule = role_rule(actor, RISK_OFFICERS, f"set a model's {what}")
    if not rule:
        return rule
    if model.owner_id == pk_of(actor):
        return Rule(
            False, f"You own {model.name}, so you cannot set its {what} (segregation of duties).", code=OWN_WORK
        )
    mine = ModelVersion.objects.filter(registered_model=model).filter(Q(created_by=actor) | Q(submitted_by=actor))
    if mine.exists():
        return Rule(
            False,
            f"You created or submitted a version of {model.name}, so you cannot set its {what} "
            "(segregation of duties).",
            code=OWN_WORK,
        )
    return YES


def can_set_fairness_requirements(model: RegisteredModel, actor: Actor) -> Rule:
    """The second line sets what the first line's fairness check must measure: as for the tier."""
    return can_set_tier(model, actor, "fairness requirements")


def missing_required_features(version: ModelVersion) -> list[str]:
    """The sensitive features officers require of the version's model that it does not measure."""
    required = FairnessRequirement.objects.filter(registered_model_id=version.registered_model_id).first()
    have = set(version.sensitive_features or [])
    return [f for f in (required.features if required is not None else []) if f not in have]


def can_report_outcome(version: ModelVersion | None, actor: Actor, *, received_it: bool) -> Rule:
    """Outcomes come from the API key that received the prediction, or from a risk officer;
    never from the version's creator or submitter (they would write the evidence judging it)."""
    if not received_it and not has_role(actor, RISK_OFFICERS):
        return Rule(
            False,
            "Only the API key that received this prediction or a risk officer reports its outcome.",
            forbidden=True,
        )
    return not_own_work(version, actor, "report its outcomes") if version is not None else YES


DECISION_READERS = frozenset({AUDITORS, RISK_OFFICERS, CASE_OFFICERS})


def can_read_decision(actor: Actor, *, received_it: bool) -> Rule:
    """One rule for a decision's data (its record, explanation, receipt, reviews) and the personal
    values they show: auditors and risk officers, and the API key that received it (its client
    sent those values). A data scientist reads the model's monitoring, not people's decisions."""
    if received_it or roles_of(actor) & DECISION_READERS:
        return YES
    return Rule(
        False,
        "Only auditors, risk officers, case officers and the API key that received it read a decision and its "
        "personal values.",
        forbidden=True,
    )


def can_review_decision(version: ModelVersion | None, actor: Actor) -> Rule:
    """A person's review or override of an automated decision: never by the version's creator or
    submitter (who may act is asked by serving: the key that received it, or a role)."""
    return not_own_work(version, actor, "review its decisions") if version is not None else YES


# The buttons, in the order pages show them.
ACTIONS = (
    ("approve", can_approve),
    ("reject", can_close_review),
    ("request_changes", can_close_review),
    ("deploy", can_deploy),
    ("rollback", can_roll_back),
    ("suspend", can_suspend),
    ("reinstate", can_reinstate),
    ("recertify", can_recertify),
    ("shadow", can_shadow),
    ("end_shadow", can_end_shadow),
    ("retire", can_retire),
)


def available_actions(version: ModelVersion, actor: Actor) -> list[str]:
    """The actions `actor` may take on `version` now: the same predicates the workflow enforces."""
    if not has_role(actor, RISK_OFFICERS):
        return []
    return [name for name, rule in ACTIONS if rule(version, actor)]


# --- independent validation (docs/design.md, "Model risk management") ----------------------
VALIDATING_STATUSES = (Status.CHECKING, Status.IN_REVIEW)
APPROVING_KINDS = (DecisionKind.APPROVE, DecisionKind.RECERTIFY, DecisionKind.REINSTATE)


def latest_validation(version: ModelVersion) -> Any:
    """The latest validation report of the version's current review round (None before any): the
    one in force, bound into the manifest."""
    return bindings.manifest.latest_validation(version)


def can_validate(version: ModelVersion, actor: Actor) -> Rule:
    """A validator writes a report on a submitted version before its approval, never the
    version's creator, submitter or one of its approvers (segregation of duties)."""
    from core.roles import VALIDATORS

    rule = role_rule(actor, VALIDATORS, "write validation reports")
    if not rule:
        return rule
    if pk_of(actor) == version.created_by_id:
        return Rule(False, "You created this version, so you cannot validate it (independence).", forbidden=True)
    if pk_of(actor) == version.submitted_by_id:
        return Rule(False, "You submitted this version, so you cannot validate it (independence).", forbidden=True)
    if Decision.objects.filter(version=version, kind__in=APPROVING_KINDS, actor_id=pk_of(actor)).exists():
        return Rule(False, "You approved this version, so you cannot validate it (independence).", forbidden=True)
    if version.status not in VALIDATING_STATUSES:
        return no(
            f"{version} is {status_label(version.status)}; a validation report is written while it is checked or in "
            "review, before approval (submit a new version to validate it again)."
        )
    return YES


def validation_allows_approval(version: ModelVersion, actor: Actor) -> Rule:
    """Approval needs the round's validation report when the policy names the model's tier, and
    none that concludes `not_fit`; and the approver never validated the version."""
    from governance.models import Conclusion, ValidationReport

    if ValidationReport.objects.filter(version=version, validator_id=pk_of(actor)).exists():
        return Rule(False, "You validated this version, so you cannot approve it (independence).", forbidden=True)
    latest = latest_validation(version)
    if latest is not None and latest.conclusion == Conclusion.NOT_FIT:
        return Rule(
            False,
            f"The validation report by {latest.validator_username} concludes the version is not fit for use: "
            "it cannot be approved.",
            code="validation_not_fit",
        )
    tier = version.registered_model.effective_tier
    if latest is None and active_policy().validation_required_for(tier):
        return Rule(
            False,
            f"The policy requires an independent validation report before a {tier}-tier version is approved; "
            f"{version} has none for this review round.",
            code="validation_required",
        )
    return YES


# --- change materiality -------------------------------------------------------------
def approvals_required(version: ModelVersion) -> int:
    """The approvals the version needs: the policy's count for the model's tier, or one when the
    policy gives non-material changes the lighter path and this round's change is non-material
    (governance.materiality)."""
    from governance.models import ChangeClassification

    policy = active_policy()
    if (
        policy.non_material_single_approval
        and ChangeClassification.objects.filter(version=version, round=version.review_round, material=False).exists()
    ):
        return 1
    return policy.approvals_for(version.registered_model.effective_tier)
