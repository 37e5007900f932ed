"""Does each servable version's approval still hold? Recomputed from what is stored now: the
artifact's bytes, the ONNX file's bytes, the card, the round's check results and the model's
effective tier, against the approvals that bound them. A version whose approval is void is
suspended (governance.workflow), so it stops answering in every process at once: the serving
log's guarded INSERT refuses any status but approved and production.

Run by a periodic task (INTEGRITY_CHECK_INTERVAL_SECONDS), by `verify_audit`, and right after a
risk officer changes a model's tier."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.files.storage import default_storage

from governance import bindings, manifest, operations, rules, selectors
from governance.models import Decision, DecisionKind
from lifecycle.artifacts import read_verified_bytes, sha256_of
from lifecycle.errors import ArtifactIntegrityError
from lifecycle.models import SERVABLE_STATUSES, ModelVersion


@dataclass(frozen=True)
class Suspension:
    version: ModelVersion
    changed: list[str]


def what_changed(version: ModelVersion) -> list[str]:
    """What no longer matches the approval, in words; empty when the approval holds."""
    changed: list[str] = []
    try:
        read_verified_bytes(version.artifact, version.artifact_sha256)
    except ArtifactIntegrityError:
        changed.append("the stored artifact's bytes")
    except OSError:
        changed.append("the stored artifact (it cannot be read)")
    onnx = selectors.onnx_check(version)
    if onnx is not None:
        try:
            with default_storage.open(onnx.metrics["onnx_file"], "rb") as handle:
                if sha256_of(handle.read()) != onnx.metrics["onnx_sha256"]:
                    changed.append("the stored ONNX file's bytes")
        except OSError:
            changed.append("the stored ONNX file (it cannot be read)")
    manifest_changed = bool(version.manifest_sha256) and version.manifest_sha256 != manifest.sha256(version)
    granted = (
        Decision.objects.filter(version=version, approval_expires_at__isnull=False)
        .order_by("-created_at", "-pk")
        .values_list("approval_expires_at", flat=True)
        .first()
    )
    if granted is not None and version.approval_expires_at != granted:
        changed.append("the approval's expiry")
    valid, required = rules.approvals_progress(version)
    if valid < required:
        bound = bindings.current(version)
        approvals = Decision.objects.filter(version=version, round=version.review_round, kind=DecisionKind.APPROVE)
        named = sorted({what for d in approvals for what in bindings.changed_since(d, bound)})
        changed += named or [f"the approvals ({valid} valid of {required} required)"]
    if manifest_changed and not changed:
        changed.append("the version manifest")
    return changed


def suspend_void_versions(*, model_id: int | None = None) -> list[Suspension]:
    """Suspend every servable version (of one model, or all) whose approval no longer holds."""
    versions = ModelVersion.objects.filter(status__in=SERVABLE_STATUSES).select_related("registered_model", "card")
    if model_id is not None:
        versions = versions.filter(registered_model_id=model_id)
    suspended = []
    for version in versions.order_by("pk"):
        changed = what_changed(version)
        if not changed:
            continue
        reason = "Its approval no longer holds: " + ", ".join(changed) + " changed after it was approved."
        suspended.append(
            Suspension(operations.suspend_version(version.pk, actor=None, reason=reason, changed=changed), changed)
        )
    return suspended
