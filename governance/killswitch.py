"""The kill switch (docs/design.md, "Model risk management"): a risk officer pre-designates a version
whose approval holds as the model's fallback, and may stop the model in one action. While it is
stopped every serving process answers from the fallback, or refuses 503 `model_stopped` when
there is none: the serving log's guarded INSERT reads the model's stop in the same statement
(serving.log), so no process answers from what it remembered (docs/decisions-incidents.md).

The three fields live on the registered model (governed state): only these functions change
them, each with its audit event carrying the row's new content hash."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from core import audit
from core.actors import Actor
from core.roles import RISK_OFFICERS
from governance import rules
from governance.errors import WorkflowError
from lifecycle.models import SERVABLE_STATUSES, ModelVersion, RegisteredModel, Status


def _justified(justification: Any) -> str:
    text = justification.strip() if isinstance(justification, str) else ""
    if not text:
        raise WorkflowError("A written justification is required.", field="justification", status=400)
    return text


def require_officer(actor: Actor, doing: str) -> None:
    rule = rules.role_rule(actor, RISK_OFFICERS, doing)
    if not rule:
        raise WorkflowError(rule.reason, status=403, code="forbidden")


def fallback_rule(model: RegisteredModel, version: ModelVersion) -> rules.Rule:
    """A fallback is another version of the same model whose approval holds now: approved or in
    production, the tier's count of approvals still binding it, and not expired."""
    if version.registered_model_id != model.pk:
        return rules.Rule(False, f"{version} is not a version of {model}.")
    if version.status not in SERVABLE_STATUSES:
        return rules.Rule(False, f"{version} is {version.get_status_display().lower()}: a fallback must be approved.")
    valid, required = rules.approvals_progress(version)
    if valid < required:
        return rules.Rule(
            False, f"{version}'s approval no longer holds ({valid} of {required} approvals still bind it)."
        )
    if rules.approval_expired(version):
        return rules.Rule(False, f"{version}'s approval expired: recertify it before naming it the fallback.")
    if version.status == Status.PRODUCTION:
        return rules.Rule(False, f"{version} is the version in production: the fallback must be another one.")
    return rules.YES


@transaction.atomic
def designate_fallback(
    model_id: int, *, actor: Actor, version_number: int | None, justification: str
) -> RegisteredModel:
    """A risk officer names the version that answers while the model is stopped (None: no fallback)."""
    require_officer(actor, "designate fallback versions")
    text = _justified(justification)
    model = RegisteredModel.objects.select_for_update().get(pk=model_id)
    version = None
    if version_number is not None:
        version = ModelVersion.objects.filter(registered_model=model, version=version_number).first()
        if version is None:
            raise WorkflowError(f"{model} has no version {version_number}.", field="version", status=400)
        rule = fallback_rule(model, version)
        if not rule:
            raise WorkflowError(rule.reason, field="version")
    before = model.fallback_version.version if model.fallback_version is not None else None
    model.fallback_version = version
    model.save(update_fields=["fallback_version"])
    audit.record(
        audit.MODEL_FALLBACK_SET,
        actor=actor,
        target=model,
        data={
            "model": model.name,
            "before": before,
            "after": version.version if version else None,
            "manifest_sha256": version.manifest_sha256 if version else "",
            "stopped": model.is_stopped,
            "justification": text,
        },
    )
    return model


@transaction.atomic
def stop_model(model_id: int, *, actor: Actor, justification: str) -> RegisteredModel:
    """Stop the model: from this commit every process answers from the fallback, or 503."""
    require_officer(actor, "stop models")
    text = _justified(justification)
    model = RegisteredModel.objects.select_for_update().get(pk=model_id)
    if model.is_stopped:
        raise WorkflowError(f"{model} is already stopped (since {model.stopped_at:%Y-%m-%d %H:%M} UTC).")
    model.stopped_at = timezone.now()
    model.stopped_reason = text
    model.save(update_fields=["stopped_at", "stopped_reason"])
    fallback = model.fallback_version
    audit.record(
        audit.MODEL_STOPPED,
        actor=actor,
        target=model,
        data={
            "model": model.name,
            "fallback": fallback.version if fallback else None,
            "fallback_servable": bool(fallback and fallback_rule(model, fallback)),
            "justification": text,
        },
    )
    return model


@transaction.atomic
def resume_model(model_id: int, *, actor: Actor, justification: str) -> RegisteredModel:
    """Resume the model: its production (or named approved) versions answer again."""
    require_officer(actor, "resume models")
    text = _justified(justification)
    model = RegisteredModel.objects.select_for_update().get(pk=model_id)
    if not model.is_stopped:
        raise WorkflowError(f"{model} is not stopped.")
    stopped_at = model.stopped_at
    model.stopped_at = None
    model.stopped_reason = ""
    model.save(update_fields=["stopped_at", "stopped_reason"])
    audit.record(
        audit.MODEL_RESUMED,
        actor=actor,
        target=model,
        data={"model": model.name, "stopped_at": stopped_at.isoformat() if stopped_at else None, "justification": text},
    )
    return model
