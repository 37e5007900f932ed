"""The limitations and overlays register: risk officers record a model's known
limitations and post-model adjustments with an owner, a reason, the adjustment and an expiry;
they are shown on every decision receipt and report while in force, and a periodic task opens a
finding on the model's production (else latest) version when one expires."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from core import audit
from core.actors import Actor, username_of
from core.roles import RISK_OFFICERS, has_role
from governance import findings
from governance.errors import WorkflowError
from governance.models import Overlay, OverlayKind, Severity
from lifecycle.errors import Forbidden, NotFound, SubmissionInvalid
from lifecycle.models import ModelVersion, RegisteredModel, Status

MAX_TEXT = 20_000


def in_force(model_id: int, at: datetime | None = None) -> QuerySet[Overlay]:
    """The model's limitations and overlays in force at `at` (now by default)."""
    moment = at or timezone.now()
    return (
        Overlay.objects.filter(registered_model_id=model_id, starts_at__lte=moment, expires_at__gt=moment)
        .filter(Q(withdrawn_at__isnull=True) | Q(withdrawn_at__gt=moment))
        .select_related("owner")
        .order_by("expires_at", "pk")
    )


def overlay_data(o: Overlay, at: datetime | None = None) -> dict[str, Any]:
    """The entry as plain data; `in_force` at `at` (now by default)."""
    return {
        "id": o.pk,
        "model": o.registered_model.name,
        "kind": o.kind,
        "owner": o.owner.get_username(),
        "reason": o.reason,
        "adjustment": o.adjustment,
        "starts_at": o.starts_at,
        "expires_at": o.expires_at,
        "recorded_by": o.recorded_by_username,
        "withdrawn_at": o.withdrawn_at,
        "in_force": o.in_force_at(at or timezone.now()),
        "expiry_finding": o.expiry_finding_id,
    }


@transaction.atomic
def record_overlay(
    model_id: int,
    *,
    actor: Actor,
    kind: Any,
    owner: Any,
    reason: Any,
    adjustment: Any,
    expires_at: Any,
    starts_at: Any = None,
) -> Overlay:
    """Record a limitation or overlay on a model (risk officers); `owner` is a username."""
    if not has_role(actor, RISK_OFFICERS):
        raise Forbidden("Only risk officers record limitations and overlays.")
    model = RegisteredModel.objects.select_for_update().filter(pk=model_id).first()
    if model is None:
        raise NotFound("There is no such model.")
    errors: dict[str, list[str]] = {}
    now = timezone.now()
    if kind not in OverlayKind.values:
        errors["kind"] = [f"Choose one of {', '.join(OverlayKind.values)}."]
    person = get_user_model().objects.filter(username=owner, is_active=True).first() if isinstance(owner, str) else None
    if person is None:
        errors["owner"] = ["Name an active user by username."]
    for field, text in (("reason", reason), ("adjustment", adjustment)):
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            errors[field] = [f"Write the {field} (at most {MAX_TEXT} characters)."]
    start = starts_at or now
    if not isinstance(start, datetime):
        errors["starts_at"] = ["An ISO 8601 date-time."]
    if not isinstance(expires_at, datetime):
        errors["expires_at"] = ["An ISO 8601 date-time."]
    elif expires_at <= now or (isinstance(start, datetime) and expires_at <= start):
        errors["expires_at"] = ["The expiry must be in the future and after the start."]
    if errors or person is None:
        raise SubmissionInvalid(errors or {"owner": ["Name the overlay's owner."]})
    overlay = Overlay.objects.create(
        registered_model=model,
        kind=kind,
        owner=person,
        reason=reason.strip(),
        adjustment=adjustment.strip(),
        starts_at=start,
        expires_at=expires_at,
        recorded_by_username=username_of(actor),
        created_at=now,
    )
    audit.record(
        audit.OVERLAY_RECORDED,
        actor=actor,
        target=overlay,
        data={"model": model.name, "kind": kind, "owner": person.get_username(), "expires_at": expires_at},
    )
    return overlay


@transaction.atomic
def withdraw_overlay(overlay_id: int, *, actor: Actor, justification: str) -> Overlay:
    if not has_role(actor, RISK_OFFICERS):
        raise Forbidden("Only risk officers withdraw limitations and overlays.")
    overlay = Overlay.objects.select_for_update().filter(pk=overlay_id).first()
    if overlay is None:
        raise NotFound("There is no such overlay.")
    text = (justification or "").strip()
    if not text:
        raise WorkflowError("Withdrawing an overlay needs a written justification.", field="justification")
    if overlay.withdrawn_at is not None:
        raise WorkflowError(f"Overlay #{overlay.pk} was withdrawn already.")
    overlay.withdrawn_at = timezone.now()
    overlay.withdrawn_by_username = username_of(actor)
    overlay.withdraw_justification = text
    overlay.save(update_fields=["withdrawn_at", "withdrawn_by_username", "withdraw_justification"])
    audit.record(audit.OVERLAY_WITHDRAWN, actor=actor, target=overlay, data={"justification": text})
    return overlay


def _finding_version(model: RegisteredModel) -> ModelVersion | None:
    versions = model.versions.order_by("-version")
    return versions.filter(status=Status.PRODUCTION).first() or versions.first()


def open_expiry_findings(now: datetime | None = None) -> list[int]:
    """For each expired overlay not withdrawn before its expiry and without a finding yet, open
    a medium finding (owner: the model's owner) on the model's production, else latest, version.
    A model with no version (vendor, external) gets none: the inventory shows its register."""
    moment = now or timezone.now()
    opened = []
    due = Overlay.objects.filter(expires_at__lte=moment, expiry_finding__isnull=True).filter(
        Q(withdrawn_at__isnull=True) | Q(withdrawn_at__gt=F("expires_at"))
    )
    for overlay_id in due.values_list("pk", flat=True):
        with transaction.atomic():
            overlay = Overlay.objects.select_for_update().select_related("registered_model").get(pk=overlay_id)
            if overlay.expiry_finding_id is not None:
                continue
            version = _finding_version(overlay.registered_model)
            if version is None:
                continue
            finding, _ = findings.open_finding(
                version_id=version.pk,
                key=f"overlay:{overlay.pk}",
                severity=Severity.MEDIUM,
                title=f"{overlay.get_kind_display()} #{overlay.pk} expired on {overlay.expires_at:%Y-%m-%d}",
                description=f"Reason: {overlay.reason}\nAdjustment: {overlay.adjustment}\n"
                "Renew it with a new entry, or remove the cause and close this finding.",
                source=f"overlay #{overlay.pk}",
            )
            overlay.expiry_finding = finding
            overlay.save(update_fields=["expiry_finding"])
            audit.record(audit.OVERLAY_EXPIRED, actor=None, target=overlay, data={"finding": finding.pk})
            opened.append(finding.pk)
    return opened
