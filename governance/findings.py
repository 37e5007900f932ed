"""The findings register: issues found about a version after go-live, each owned until closed
with a justification. Monitoring opens them (monitoring.alerts); risk officers assign, comment
and close them in the admin. Every write carries its audit event and evidence."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from core import audit, jobs
from core.actors import Actor, person
from core.evidence import evidence
from core.roles import RISK_OFFICERS, has_role
from governance.errors import WorkflowError
from governance.models import Finding, FindingComment, Severity
from lifecycle.errors import Forbidden, NotFound
from lifecycle.models import ModelVersion

# the background jobs this module sends (core.jobs; a task registers each)
NOTIFY = jobs.job("notify", __name__)

# How long the owner has to act, by severity.
DUE_DAYS = {Severity.HIGH: 14, Severity.MEDIUM: 30, Severity.LOW: 90}


@transaction.atomic
def open_finding(
    *,
    version_id: int,
    key: str,
    severity: str,
    title: str,
    description: str = "",
    source: str = "",
    window: tuple[datetime, datetime] | None = None,
    actor: Actor = None,
) -> tuple[Finding, bool]:
    """Open a finding (owned by the model's owner, due by severity), or return the open one with
    the same key (a later alert on the same subject does not open a second finding); the bool
    says whether one was opened. Notifies the owner and the risk officers after commit."""
    version = ModelVersion.objects.select_related("registered_model").get(pk=version_id)
    existing = Finding.objects.select_for_update().filter(version=version, key=key, closed_at__isnull=True).first()
    if existing is not None:
        return existing, False
    now = timezone.now()
    finding = Finding.objects.create(
        version=version,
        severity=Severity(severity),
        title=title[:300],
        description=description,
        key=key,
        source=source,
        window_start=window[0] if window else None,
        window_end=window[1] if window else None,
        owner_id=version.registered_model.owner_id,
        due_at=now + timedelta(days=DUE_DAYS[Severity(severity)]),
        opened_at=now,
        opened_by_username=actor.get_username() if actor is not None else "system",
    )
    audit.record(
        audit.FINDING_OPENED,
        actor=actor,
        target=version,
        data={
            "finding": finding.pk,
            "severity": finding.severity,
            "title": finding.title,
            "key": key,
            "source": source,
            "evidence": evidence(finding),
        },
    )
    jobs.after_commit(NOTIFY, "finding_opened", version.pk, finding.pk)
    return finding, True


def _locked_open(finding_id: int, actor: Actor) -> Finding:
    if not has_role(actor, RISK_OFFICERS):
        raise Forbidden("Only risk officers manage findings.")
    finding = Finding.objects.select_for_update().filter(pk=finding_id).first()
    if finding is None:
        raise NotFound("There is no such finding.")
    if not finding.is_open:
        raise WorkflowError(f"Finding #{finding.pk} is closed.")
    return finding


@transaction.atomic
def assign_finding(finding_id: int, *, actor: Actor, owner: Any, due_at: datetime | None = None) -> Finding:
    """Give a finding to an owner (and a new due date), by a risk officer."""
    finding = _locked_open(finding_id, actor)
    before = {"owner": finding.owner.get_username() if finding.owner else None, "due_at": finding.due_at}
    finding.owner = owner
    if due_at is not None:
        finding.due_at = due_at
    finding.save(update_fields=["owner", "due_at"])
    audit.record(
        audit.FINDING_UPDATED,
        actor=actor,
        target=finding.version,
        data={
            "finding": finding.pk,
            "before": before,
            "owner": owner.get_username() if owner else None,
            "due_at": finding.due_at,
            "evidence": evidence(finding),
        },
    )
    return finding


@transaction.atomic
def comment_on_finding(finding_id: int, *, actor: Actor, text: str) -> FindingComment:
    finding = _locked_open(finding_id, actor)
    if not (text or "").strip():
        raise WorkflowError("A comment needs some text.")
    comment = FindingComment.objects.create(
        finding=finding, author=person(actor), author_username=person(actor).get_username(), text=text.strip()
    )
    audit.record(
        audit.FINDING_COMMENTED,
        actor=actor,
        target=finding.version,
        data={"finding": finding.pk, "comment": comment.pk, "evidence": evidence(comment)},
    )
    return comment


@transaction.atomic
def close_finding(finding_id: int, *, actor: Actor, justification: str) -> Finding:
    """Close a finding with a written justification, by a risk officer."""
    finding = _locked_open(finding_id, actor)
    text = (justification or "").strip()
    if not text:
        raise WorkflowError("Closing a finding needs a written justification.")
    finding.closed_at = timezone.now()
    finding.closed_by_username = person(actor).get_username()
    finding.close_justification = text
    finding.save(update_fields=["closed_at", "closed_by_username", "close_justification"])
    audit.record(
        audit.FINDING_CLOSED,
        actor=actor,
        target=finding.version,
        data={"finding": finding.pk, "justification": text, "evidence": evidence(finding)},
    )
    return finding
