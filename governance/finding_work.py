"""A finding's owner at work: the owner (often a data scientist) comments on her
finding and proposes its closure; risk officers close it (governance.findings.close_finding).
Each comment is evidence with its audit event; a proposal is a comment recorded with its own
event, so the page, the trail and verification all see it."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from core import audit
from core.actors import Actor, person, pk_of
from core.evidence import evidence
from core.roles import RISK_OFFICERS, has_role
from governance.errors import WorkflowError
from governance.models import Finding, FindingComment
from governance.rules import Rule
from lifecycle.errors import Forbidden, NotFound


def can_work_on(finding: Finding, actor: Actor) -> Rule:
    """The finding's owner and risk officers comment on an open finding; only risk officers close it."""
    if not finding.is_open:
        return Rule(False, f"Finding #{finding.pk} is closed.")
    if has_role(actor, RISK_OFFICERS) or (finding.owner_id is not None and finding.owner_id == pk_of(actor)):
        return Rule(True)
    return Rule(False, "Only the finding's owner and risk officers comment on it.", forbidden=True)


def can_close(finding: Finding, actor: Actor) -> Rule:
    if not finding.is_open:
        return Rule(False, f"Finding #{finding.pk} is closed.")
    if not has_role(actor, RISK_OFFICERS):
        return Rule(False, "Only risk officers close findings; the owner proposes the closure.", forbidden=True)
    return Rule(True)


def may_read(finding: Finding, actor: Actor) -> bool:
    """Its owner, and everyone whose role reads the models' governance (any role)."""
    from core.roles import roles_of

    return finding.owner_id == getattr(actor, "pk", None) or bool(roles_of(actor))


@transaction.atomic
def owner_comment(finding_id: int, *, actor: Actor, text: str, proposes_closure: bool = False) -> FindingComment:
    """A comment by the owner or a risk officer; with `proposes_closure`, the owner asks the
    risk officers to close the finding (recorded as its own audit event)."""
    finding = Finding.objects.select_for_update().filter(pk=finding_id).first()
    if finding is None:
        raise NotFound("There is no such finding.")
    rule = can_work_on(finding, actor)
    if not rule:
        raise Forbidden(rule.reason) if rule.forbidden else WorkflowError(rule.reason)
    body = (text or "").strip()
    if not body:
        raise WorkflowError("A comment needs some text." if not proposes_closure else "Say why it can be closed.")
    comment = FindingComment.objects.create(
        finding=finding, author=person(actor), author_username=person(actor).get_username(), text=body
    )
    audit.record(
        audit.FINDING_CLOSURE_PROPOSED if proposes_closure else audit.FINDING_COMMENTED,
        actor=actor,
        target=finding.version,
        data={"finding": finding.pk, "comment": comment.pk, "evidence": evidence(comment)},
    )
    return comment


def closure_proposals(finding: Finding) -> set[int]:
    """The ids of the finding's comments that propose its closure."""
    from core.models import AuditEvent

    events = AuditEvent.objects.filter(
        action=audit.FINDING_CLOSURE_PROPOSED,
        target_type="lifecycle.modelversion",
        target_id=str(finding.version_id),
    ).values_list("data", flat=True)
    return {int(d["comment"]) for d in events if (d or {}).get("finding") == finding.pk}


def assigned_to(user: Any) -> Any:
    """The open findings a person owns, soonest due first."""
    return (
        Finding.objects.filter(owner=user, closed_at__isnull=True)
        .select_related("version__registered_model")
        .order_by("due_at", "pk")
    )
