"""Granting and removing a role: the only way people join or leave the three role groups, each
an audit event naming who did it and why, carrying the membership as evidence (so verify_audit
can prove every membership was granted through here)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction

from core import audit
from core.actors import Actor
from core.errors import DomainError, Forbidden
from core.evidence import content_hash
from core.roles import ALL_ROLES, RISK_OFFICERS, has_role

MEMBERSHIP = "core.role"


def membership_key(user_id: int, role: str) -> str:
    return f"{MEMBERSHIP}:{user_id}:{role}"


def membership_values(user_id: int, role: str, member: bool) -> dict[str, Any]:
    return {"user": user_id, "role": role, "member": member}


def _evidence(user_id: int, role: str, member: bool) -> list[dict[str, Any]]:
    values = membership_values(user_id, role, member)
    return [{"row": membership_key(user_id, role), "fields": sorted(values), "sha256": content_hash(values)}]


def _change(user: Any, role: str, *, actor: Actor, justification: str, grant: bool) -> Any:
    if role not in ALL_ROLES:
        raise DomainError(f"{role!r} is not a role ({', '.join(ALL_ROLES)}).", field="role")
    if actor is not None and not (getattr(actor, "is_superuser", False) or has_role(actor, RISK_OFFICERS)):
        raise Forbidden("Only risk officers and administrators change roles.")
    text = (justification or "").strip()
    if not text:
        raise DomainError("A written justification is required.", field="justification")
    group, _ = Group.objects.get_or_create(name=role)
    is_member = user.groups.filter(pk=group.pk).exists()
    if is_member == grant:
        return user
    if grant:
        user.groups.add(group)
    else:
        user.groups.remove(group)
    if hasattr(user, "_role_names"):
        del user._role_names  # (roles_of caches them on the object)
    audit.record(
        audit.ROLE_GRANTED if grant else audit.ROLE_REVOKED,
        actor=actor,
        target=user,
        data={
            "role": role,
            "username": user.get_username(),
            "justification": text,
            "evidence": _evidence(user.pk, role, grant),
        },
    )
    return user


@transaction.atomic
def grant_role(user: Any, role: str, *, actor: Actor, justification: str) -> Any:
    """Add `user` to a role (actor None: the system, e.g. the demo or a deployment script)."""
    return _change(user, role, actor=actor, justification=justification, grant=True)


@transaction.atomic
def revoke_role(user: Any, role: str, *, actor: Actor, justification: str) -> Any:
    """Remove `user` from a role."""
    return _change(user, role, actor=actor, justification=justification, grant=False)
