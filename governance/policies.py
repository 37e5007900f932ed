"""The policy in force and its changes (each one an audit event)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from core import audit
from core.actors import Actor
from core.evidence import evidence
from core.roles import RISK_OFFICERS, has_role
from governance.errors import WorkflowError
from governance.models import Policy
from lifecycle.errors import Forbidden

DEFAULT_POLICY = "default"


def active_policy() -> Policy:
    """The policy in force (created by a migration; recreated, audited, if someone removed it)."""
    policy = Policy.objects.filter(name=DEFAULT_POLICY).first()
    if policy is None:
        with transaction.atomic():
            policy, created = Policy.objects.get_or_create(name=DEFAULT_POLICY)
            if created:
                audit.record(
                    audit.POLICY_CREATED,
                    actor=None,
                    target=policy,
                    data={"policy": policy.name, "values": policy.values(), "evidence": evidence(policy)},
                )
    return policy


@transaction.atomic
def update_policy(policy_id: int, *, actor: Actor, changes: dict[str, Any], justification: str) -> Policy:
    """Change policy values, with a written justification. Only risk officers may: a superuser
    without the role is refused like anyone else (actor None is the system, for deployment
    scripts; no request reaches it). Every change is audited with the values before and after,
    the justification and the row's content hash."""
    if actor is not None and not has_role(actor, RISK_OFFICERS):
        raise Forbidden("Only risk officers change policies.")
    text = (justification or "").strip()
    if not text:
        raise WorkflowError("A written justification is required to change a policy.", field="justification")
    policy = Policy.objects.select_for_update().get(pk=policy_id)
    before = policy.values()
    for name, value in changes.items():
        if name not in before:
            raise WorkflowError(f"{name!r} is not a policy value.", field=name)
        setattr(policy, name, value)
    policy.full_clean()
    policy.save()
    after = policy.values()
    changed = {k: {"before": before[k], "after": after[k]} for k in after if before[k] != after[k]}
    if changed:
        audit.record(
            audit.POLICY_CHANGED,
            actor=actor,
            target=policy,
            data={"policy": policy.name, "changes": changed, "justification": text, "evidence": evidence(policy)},
        )
    return policy
