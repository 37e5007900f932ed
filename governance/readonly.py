"""The auditors' read-only rule, shared by the web middleware and the API-key authentication:
an account whose only role is auditor may not send a request that could write, and every
attempt is written to the audit trail."""

from __future__ import annotations

from django.db import transaction

from core import audit
from core.actors import Actor
from core.roles import AUDITORS, roles_of

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
MESSAGE = "Auditors have read-only access: this request was refused and recorded in the audit trail."


# Reads sent as POST (the filters in a body, so that a data subject's key stays out of URLs).
READS_BY_POST = ("/api/v1/predictions/search",)


def is_refused_write(user: Actor, method: str | None, path: str = "") -> bool:
    if path in READS_BY_POST:
        return False
    return method not in SAFE_METHODS and roles_of(user) == {AUDITORS}


def record_refused_write(*, actor: Actor, method: str, path: str) -> None:
    with transaction.atomic():
        audit.record(audit.AUDITOR_WRITE_REFUSED, actor=actor, data={"method": method, "path": path[:500]})
