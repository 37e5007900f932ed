"""The three roles are Django groups (created by a data migration). Role checks live here
so every interface asks the same question the same way; `roles_context` is the template
context processor that gives the pages the same answers."""

from __future__ import annotations

from typing import Any

from core.actors import Actor

DATA_SCIENTISTS = "data-scientists"
RISK_OFFICERS = "risk-officers"
AUDITORS = "auditors"
# The second line's independent validation (docs/design.md, "Model risk management").
VALIDATORS = "validators"
# Work the human-oversight queue (docs/design.md, "Human oversight and contestation").
CASE_OFFICERS = "case-officers"
ALL_ROLES = (DATA_SCIENTISTS, RISK_OFFICERS, AUDITORS, VALIDATORS, CASE_OFFICERS)


def roles_of(user: Actor) -> frozenset[str]:
    """The role names of a user (cached on the object for the request)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return frozenset()
    cached = getattr(user, "_role_names", None)
    if cached is None:
        if not hasattr(user, "groups"):
            cached = frozenset()  # an API key bound to no user has no role
        else:
            cached = frozenset(user.groups.filter(name__in=ALL_ROLES).values_list("name", flat=True))
        # (a cache the Principal type does not declare)
        user._role_names = cached  # type: ignore[attr-defined]
    return cached


def has_role(user: Actor, role: str) -> bool:
    return role in roles_of(user)


# Who reads the whole audit trail (the audit workspace): auditors and risk officers. Everyone else
# with a role sees what happens to the models (core.selectors.audit_events_visible_to), not who
# audits them.
FULL_TRAIL_ROLES = frozenset({AUDITORS, RISK_OFFICERS})


def reads_full_audit_trail(user: Actor) -> bool:
    return bool(roles_of(user) & FULL_TRAIL_ROLES)


def roles_context(request: Any) -> dict[str, Any]:
    roles = roles_of(getattr(request, "user", None))
    return {
        "is_data_scientist": DATA_SCIENTISTS in roles,
        "is_risk_officer": RISK_OFFICERS in roles,
        "is_auditor": AUDITORS in roles,
        "is_validator": VALIDATORS in roles,
        "is_case_officer": CASE_OFFICERS in roles,
    }
