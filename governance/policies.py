"""The policy in force and its changes (each one an audit event)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from core import audit
from core.evidence import evidence
from core.roles import RISK_OFFICERS, has_role
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
def update_policy(policy_id: int, *, actor: Any, changes: dict[str, Any]) -> Policy:
    """Change policy values; only risk officers (or superusers, or the system: actor None, for
    deployment scripts and the demo) may, and every change is audited with the values before and
    after and the row's content hash."""
    if actor is not None and not (has_role(actor, RISK_OFFICERS) or getattr(actor, "is_superuser", False)):
        raise Forbidden("Only risk officers change policies.")
    policy = Policy.objects.select_for_update().get(pk=policy_id)
    before = policy.values()
    for name, value in changes.items():
        if name not in before:
            raise ValueError(f"unknown policy field {name}")
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
            data={"policy": policy.name, "changes": changed, "evidence": evidence(policy)},
        )
    return policy
