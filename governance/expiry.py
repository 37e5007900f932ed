"""Approvals expire (docs/design.md: an approval lapses after the policy's recertification period for
the tier). Serving refuses an expired approval at once (serving.selectors and the log's guarded
INSERT); this sweep, run with the periodic integrity task, reminds people before the date and
at expiry suspends the version (policy on_expiry "suspend") or records it ("warn")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from core import audit, jobs
from core.models import AuditEvent
from governance import operations
from governance.policies import active_policy
from governance.rules import EXPIRED_PREFIX
from lifecycle.models import SERVABLE_STATUSES, ModelVersion

# the background jobs this module sends (core.jobs; a task registers each)
NOTIFY = jobs.job("notify", __name__)


@dataclass(frozen=True)
class Sweep:
    reminded: list[int]
    expired: list[int]
    suspended: list[int]


def sweep_expiries(*, now: Any = None) -> Sweep:
    now = now or timezone.now()
    policy = active_policy()
    servable = ModelVersion.objects.filter(status__in=SERVABLE_STATUSES, approval_expires_at__isnull=False)
    reminded, expired, suspended = [], [], []
    horizon = now + timedelta(days=policy.recertify_reminder_days)
    for version in servable.filter(approval_expires_at__gt=now, approval_expires_at__lte=horizon).order_by("pk"):
        if version.expiry_reminded_at is None:
            remind(version.pk)
            reminded.append(version.pk)
    for version in servable.filter(approval_expires_at__lte=now).select_related("registered_model").order_by("pk"):
        reason = f"{EXPIRED_PREFIX} on {version.approval_expires_at:%Y-%m-%d %H:%M} UTC: recertify it."
        if policy.on_expiry == "suspend":
            operations.suspend_version(version.pk, actor=None, reason=reason, changed=["the approval's expiry"])
            suspended.append(version.pk)
        elif _record_expiry_once(version, reason):
            expired.append(version.pk)
    return Sweep(reminded, expired, suspended)


@transaction.atomic
def remind(version_id: int) -> None:
    version = ModelVersion.objects.select_for_update().get(pk=version_id)
    if version.expiry_reminded_at is not None:
        return
    ModelVersion.objects.filter(pk=version.pk).update(expiry_reminded_at=timezone.now())
    audit.record(
        audit.VERSION_EXPIRY_REMINDED,
        actor=None,
        target=version,
        data={"approval_expires_at": version.approval_expires_at},
    )
    jobs.after_commit(NOTIFY, "expiry_reminder", version.pk)


@transaction.atomic
def _record_expiry_once(version: ModelVersion, reason: str) -> bool:
    """policy on_expiry "warn": serving already refuses; record the expiry once and tell people."""
    expires = str(version.approval_expires_at)
    events = AuditEvent.objects.filter(
        action=audit.VERSION_APPROVAL_EXPIRED, target_type="lifecycle.modelversion", target_id=str(version.pk)
    )
    if any(e.data.get("approval_expires_at") == expires for e in events):
        return False
    audit.record(
        audit.VERSION_APPROVAL_EXPIRED,
        actor=None,
        target=version,
        data={"approval_expires_at": expires, "reason": reason},
    )
    jobs.after_commit(NOTIFY, "approval_expired", version.pk)
    return True
