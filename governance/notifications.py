"""E-mails about the workflow, sent after the transaction commits (console backend by default)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.mail import send_mail

from core.roles import RISK_OFFICERS
from lifecycle.models import ModelVersion


def notify(kind: str, version_id: int) -> int:
    version = ModelVersion.objects.select_related("registered_model", "submitted_by").get(pk=version_id)
    if kind == "ready_for_review":
        recipients = list(
            get_user_model()
            .objects.filter(groups__name=RISK_OFFICERS, is_active=True)
            .exclude(email="")
            .values_list("email", flat=True)
        )
        subject = f"{version} is ready for review"
        body = f"The checks of {version} have finished. It waits in the review queue."
    else:
        recipients = [version.submitted_by.email] if version.submitted_by and version.submitted_by.email else []
        decision = version.decisions.order_by("-created_at").first()
        subject = f"{version}: {version.get_status_display().lower()}"
        body = f"{subject}.\n\n{decision.actor_username}: {decision.justification}" if decision else subject
    if not recipients:
        return 0
    return send_mail(subject, body, None, recipients, fail_silently=True)
