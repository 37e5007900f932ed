"""Reads that carry a rule: which audit events a person may see."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from core.actors import Actor
from core.models import AuditEvent
from core.roles import reads_full_audit_trail, roles_of

# What everyone with a role may see: the registry's and the workflow's events on models and
# versions. Not reports, exports and verifications (auditors' work), refusals, role changes,
# lockouts, policies, keys or webhooks: those stay in the audit workspace.
SHARED_ACTION_PREFIXES = (
    "lifecycle.",
    "governance.version.",
    "governance.model.",
    "governance.check.",
    "governance.risk_tier.",
)


def audit_events_visible_to(user: Actor) -> QuerySet[AuditEvent]:
    """Every event for auditors and risk officers; the shared ones for other roles; none without a role."""
    if reads_full_audit_trail(user):
        return AuditEvent.objects.all()
    if not roles_of(user):
        return AuditEvent.objects.none()
    shared = Q()
    for prefix in SHARED_ACTION_PREFIXES:
        shared |= Q(action__startswith=prefix)
    return AuditEvent.objects.filter(shared)
