"""Every evidence row proven: each decision, deployment, finished check, policy, outcome, role
membership and destroyed dataset key must still say what the audit chain recorded of it
(core.evidence). Reads every layer's tables, so it lives at the top."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.models import Group
from django.db import models

from core.evidence import Recorded, columns, content_hash, differs, latest_row_hashes
from core.role_changes import MEMBERSHIP, membership_key, membership_values
from core.roles import ALL_ROLES
from governance.models import (
    FINISHED_CHECK_STATUSES,
    CheckRun,
    Decision,
    Deployment,
    Finding,
    FindingComment,
    Policy,
)
from lifecycle.models import DatasetKey
from monitoring.models import MonitoringWindow
from serving.models import DecisionReview, Explanation, PredictionOutcome

# Evidence tables of the layers above compliance (integrations), registered when their app is
# ready, so compliance proves them without importing upwards.
_registered: list[tuple[type[models.Model], models.Q]] = []


def register_evidence_table(model: type[models.Model], which: models.Q | None = None) -> None:
    if all(m is not model for m, _ in _registered):
        _registered.append((model, which if which is not None else models.Q()))


def evidence_tables() -> list[tuple[type[models.Model], models.Q]]:
    """The evidence tables and which of their rows are evidence (a check only once finished)."""
    return _registered + [
        (Decision, models.Q()),
        (Deployment, models.Q()),
        (CheckRun, models.Q(status__in=FINISHED_CHECK_STATUSES)),
        (Policy, models.Q()),
        (PredictionOutcome, models.Q()),
        (Explanation, models.Q()),
        (DecisionReview, models.Q()),
        (Finding, models.Q()),
        (FindingComment, models.Q()),
        (MonitoringWindow, models.Q()),
        # a destroyed dataset key stays destroyed: its row never changes after the event
        (DatasetKey, models.Q(destroyed_at__isnull=False)),
    ]


@dataclass
class EvidenceVerification:
    ok: bool
    rows_checked: int
    message: str
    failures: list[str] = field(default_factory=list)
    # row keys that failed, so a report can refuse to print them as proven
    broken_rows: set[str] = field(default_factory=set)


def _check(key: str, values: dict[str, object], recorded: Recorded | None) -> str:
    if recorded is None:
        return f"{key} was never recorded in the audit trail"
    if differs(values, recorded):
        return f"{key} differs from what audit event #{recorded.seq} recorded"
    return ""


def verify_evidence(limit: int = 20) -> EvidenceVerification:
    """Recompute every evidence row's content hash and compare it with the latest audit event
    that recorded it; name the first rows that differ (at most `limit`)."""
    latest = latest_row_hashes()
    failures: list[str] = []
    broken: set[str] = set()
    checked = 0
    visited: set[str] = set()
    for model, which in evidence_tables():
        label = model._meta.label_lower
        for values in model._default_manager.filter(which).order_by("pk").values(*columns(model)).iterator():
            checked += 1
            key = f"{label}:{values['id']}"
            visited.add(key)
            problem = _check(key, values, latest.get(key))
            if problem:
                broken.add(key)
                failures.append(problem)
    # A destroyed dataset key stays destroyed: one whose row was put back (no longer destroyed,
    # so not among the rows above) is found from the chain's record of it.
    destroyed_prefix = DatasetKey._meta.label_lower + ":"
    for key in sorted(k for k in latest if k.startswith(destroyed_prefix) and k not in visited):
        checked += 1
        broken.add(key)
        failures.append(f"{key} is no longer the destroyed key audit event #{latest[key].seq} recorded")
    members = {
        (user_id, role)
        for role, user_id in Group.objects.filter(name__in=ALL_ROLES).values_list("name", "user__id")
        if user_id is not None
    }
    recorded_members = {key for key in latest if key.startswith(MEMBERSHIP + ":")}
    for user_id, role in sorted(members):
        recorded_members.discard(membership_key(user_id, role))
        checked += 1
        key = membership_key(user_id, role)
        problem = _check(key, membership_values(user_id, role, True), latest.get(key))
        if problem:
            broken.add(key)
            failures.append(f"the {role} role of user #{user_id}: {problem}")
    for key in sorted(recorded_members):  # recorded as granted, but no longer a member
        _, member, role = key.split(":")
        recorded = latest[key]
        checked += 1
        if content_hash(membership_values(int(member), role, False), recorded.fields) != recorded.sha256:
            broken.add(key)
            failures.append(f"the {role} role of user #{member} was removed without a recorded revocation")
    if failures:
        more = f" (and {len(failures) - limit} more)" if len(failures) > limit else ""
        return EvidenceVerification(
            False, checked, "Evidence BROKEN: " + "; ".join(failures[:limit]) + more, failures, broken
        )
    return EvidenceVerification(True, checked, f"{checked} evidence rows match the audit trail")
