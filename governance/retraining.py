"""Retraining driven by monitoring: a risk officer opens a retraining request
from a finding, assigned to the model's owner; the owner answers it with a new version that names
it (the request's `answered_by`, shown in the version's lineage), which closes it."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from core import audit
from core.actors import Actor, username_of
from core.roles import DATA_SCIENTISTS, RISK_OFFICERS, has_role
from governance.errors import WorkflowError
from governance.models import Finding, RetrainingRequest
from lifecycle.errors import Forbidden, NotFound
from lifecycle.models import ModelVersion


def request_data(r: RetrainingRequest) -> dict[str, Any]:
    return {
        "id": r.pk,
        "model": r.registered_model.name,
        "finding": r.finding_id,
        "owner": r.owner.get_username(),
        "reason": r.reason,
        "requested_by": r.requested_by_username,
        "opened_at": r.opened_at,
        "answered_by": r.answered_by.version if r.answered_by else None,
        "closed_at": r.closed_at,
    }


@transaction.atomic
def open_request(finding_id: int, *, actor: Actor, reason: str) -> RetrainingRequest:
    """Ask the model's owner to retrain, from an open finding (risk officers)."""
    if not has_role(actor, RISK_OFFICERS):
        raise Forbidden("Only risk officers open retraining requests.")
    finding = Finding.objects.select_for_update().select_related("version__registered_model").filter(pk=finding_id)
    found = finding.first()
    if found is None:
        raise NotFound("There is no such finding.")
    if not found.is_open:
        raise WorkflowError(f"Finding #{found.pk} is closed.")
    text = (reason or "").strip()
    if not text:
        raise WorkflowError("Say why the model needs retraining.", field="reason")
    model = found.version.registered_model
    if RetrainingRequest.objects.filter(finding=found, closed_at__isnull=True).exists():
        raise WorkflowError(f"Finding #{found.pk} has an open retraining request already.")
    request = RetrainingRequest.objects.create(
        finding=found,
        registered_model=model,
        owner_id=model.owner_id,
        reason=text,
        requested_by_username=username_of(actor),
        opened_at=timezone.now(),
    )
    audit.record(
        audit.RETRAINING_REQUESTED,
        actor=actor,
        target=request,
        data={"model": model.name, "finding": found.pk, "owner": request.owner.get_username(), "reason": text},
    )
    return request


@transaction.atomic
def answer_request(request_id: int, *, version_id: int, actor: Actor) -> RetrainingRequest:
    """A new version of the model names the request: the request closes, answered by it. By the
    request's owner or a data scientist; the version must be newer than the one the finding is on."""
    if not has_role(actor, DATA_SCIENTISTS):
        raise Forbidden("Only data scientists answer retraining requests with a new version.")
    request = RetrainingRequest.objects.select_for_update().select_related("finding__version").filter(pk=request_id)
    found = request.first()
    if found is None:
        raise NotFound("There is no such retraining request.")
    if not found.is_open:
        raise WorkflowError(f"Retraining request #{found.pk} was answered by another version already.")
    version = ModelVersion.objects.filter(pk=version_id).first()
    if version is None or version.registered_model_id != found.registered_model_id:
        raise WorkflowError("The answering version must be a version of the same model.", field="version")
    if version.version <= found.finding.version.version:
        raise WorkflowError(
            f"The answer must be a version newer than v{found.finding.version.version}, which the finding is on.",
            field="version",
        )
    found.answered_by = version
    found.closed_at = timezone.now()
    found.save(update_fields=["answered_by", "closed_at"])
    audit.record(
        audit.RETRAINING_ANSWERED,
        actor=actor,
        target=found,
        data={"version": version.version, "version_id": version.pk, "finding": found.finding_id},
    )
    return found
