"""Reads with a rule: review queue, deployment history, decisions, the audit trail's filters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from core import jobs
from core.models import AuditEvent
from core.periods import in_period
from governance.models import CheckKind, CheckRun, CheckStatus, Decision, DecisionKind, Deployment
from lifecycle.models import ModelVersion, RegisteredModel, Status


def versions_pending_review() -> QuerySet[ModelVersion]:
    """The review queue: oldest submission first."""
    return (
        ModelVersion.objects.filter(status=Status.IN_REVIEW)
        .select_related("registered_model", "submitted_by")
        .order_by("submitted_at", "pk")
    )


def onnx_check(version: ModelVersion) -> CheckRun | None:
    """The passed ONNX check of the version's round: serving runs ONNX Runtime only then."""
    return CheckRun.objects.filter(
        version=version, round=version.review_round, kind=CheckKind.ONNX, status=CheckStatus.PASSED
    ).first()


def engine_for(version: ModelVersion) -> str:
    """The engine that answers for this version: "onnx" when its ONNX check passed, else "skops"."""
    return "onnx" if onnx_check(version) is not None else "skops"


def deployment_at(model: RegisteredModel, when: datetime) -> Deployment | None:
    """The deployment that was live at `when` (deployed at or before, not yet ended)."""
    return (
        Deployment.objects.filter(registered_model=model, deployed_at__lte=when)
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=when))
        .select_related("version", "deployed_by")
        .order_by("-deployed_at", "-pk")
        .first()
    )


def approvals_of(version: ModelVersion, review_round: int | None = None) -> QuerySet[Decision]:
    rnd = version.review_round if review_round is None else review_round
    return Decision.objects.filter(version=version, round=rnd, kind=DecisionKind.APPROVE).order_by("created_at")


def audit_events(
    *, action: str = "", actor: str = "", target: str = "", since: datetime | None = None, until: datetime | None = None
) -> QuerySet[AuditEvent]:
    """The audit trail for auditors: action prefix, exact person, target text, [since, until)."""
    events = AuditEvent.objects.all()
    if action:
        events = events.filter(action__startswith=action)
    if actor:
        events = events.filter(actor_username=actor)
    if target:
        events = events.filter(target_repr__icontains=target)
    events = in_period(events, since, until)
    return events


def stranded_checks(*, now: Any, queued_for: float, running_for: float) -> QuerySet[CheckRun]:
    """Checks nobody is working on: queued longer than `queued_for` seconds (their task was never
    sent, or lost with a broker), or running longer than `running_for` (their worker died)."""
    return jobs.stranded(
        CheckRun.objects.all(),
        now=now,
        queued=(CheckStatus.QUEUED, "queued_at"),
        running=(CheckStatus.RUNNING, "started_at"),
        queued_for=queued_for,
        running_for=running_for,
    )
