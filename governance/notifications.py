"""E-mails about the workflow, sent after the transaction commits (console backend by default)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.mail import send_mail

from core.roles import RISK_OFFICERS
from governance.models import DecisionKind, Finding
from lifecycle.models import ModelVersion

# what a decision's mail says happened (the kinds' labels name the decision, not the result)
DECISION_WORDS: dict[str, str] = {
    DecisionKind.APPROVE: "approved",
    DecisionKind.REJECT: "rejected",
    DecisionKind.REQUEST_CHANGES: "changes requested",
    DecisionKind.RECERTIFY: "recertified",
}


def notify(kind: str, version_id: int, decision_id: int | None = None) -> int:
    """Send the mail about one event; a decision's mail names that decision (not whatever the
    version's status and latest decision are by the time the task runs)."""
    version = ModelVersion.objects.select_related("registered_model__owner", "submitted_by").get(pk=version_id)
    officers = list(
        get_user_model()
        .objects.filter(groups__name=RISK_OFFICERS, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )
    owner = [version.registered_model.owner.email] if version.registered_model.owner.email else []
    if kind == "finding_opened":
        finding = Finding.objects.get(pk=decision_id or 0)
        recipients = sorted(set(officers + owner))
        subject = f"{version}: {finding.get_severity_display().lower()} finding opened: {finding.title}"
        body = (
            f"{subject}\n\n{finding.description}\n\nOwner: "
            f"{finding.owner.get_username() if finding.owner else '(none)'}; due {finding.due_at:%Y-%m-%d}."
        )
    elif kind in ("expiry_reminder", "approval_expired"):
        recipients = sorted(set(officers + owner))
        when = f"{version.approval_expires_at:%Y-%m-%d}" if version.approval_expires_at else "(unknown)"
        if kind == "expiry_reminder":
            subject = f"{version}: its approval expires on {when}"
            body = f"{subject}. Risk officers must recertify it before then, or it stops answering."
        else:
            subject = f"{version}: its approval expired on {when} and it no longer answers"
            body = f"{subject}. Recertify it to serve again."
    elif kind == "ready_for_review":
        recipients = officers
        subject = f"{version} is ready for review"
        body = f"The checks of {version} have finished. It waits in the review queue."
    elif kind == "suspended":
        submitter = [version.submitted_by.email] if version.submitted_by and version.submitted_by.email else []
        recipients = sorted(set(officers + submitter))
        subject = f"{version} was suspended and no longer answers"
        body = f"{subject}.\n\n{version.suspended_reason}"
    else:
        recipients = [version.submitted_by.email] if version.submitted_by and version.submitted_by.email else []
        decisions = version.decisions.all()
        decision = (
            decisions.filter(pk=decision_id).first() if decision_id else decisions.order_by("-created_at").first()
        )
        word = DECISION_WORDS.get(decision.kind) if decision else None
        subject = f"{version}: {word or version.get_status_display().lower()}"
        body = f"{subject}.\n\n{decision.actor_username}: {decision.justification}" if decision else subject
    if not recipients:
        return 0
    return send_mail(subject, body, None, recipients, fail_silently=True)
