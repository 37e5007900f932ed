"""The version manifest: one canonical JSON of everything that decides what a version answers
and why it may (docs/ledger.md). Approvals, recertifications and reinstatements bind its SHA-256;
the version row keeps the hash its approvals bound, serving loads a version only when the
manifest recomputed from the stored rows equals it, and every answer's guarded INSERT checks
the row still carries it.

The approval's expiry is not in the manifest the approvals bind (the completing approval sets
it): it is on that decision, and the integrity check compares the version's with it."""

from __future__ import annotations

from typing import Any

from core.canonical import sha256_json
from core.evidence import content_hash, row_values
from governance.models import CheckKind, CheckRun, ValidationReport
from lifecycle.models import Dataset, ModelVersion


def _dataset(dataset: Dataset) -> dict[str, Any]:
    return {"id": dataset.pk, "sha256": dataset.sha256, "rows": dataset.row_count, "columns": dataset.columns}


def build(version: ModelVersion) -> dict[str, Any]:
    """The manifest as the stored rows say now."""
    checks = list(CheckRun.objects.filter(version=version, round=version.review_round).order_by("kind", "pk"))
    onnx = next((c for c in checks if c.kind == CheckKind.ONNX), None)
    model = version.registered_model
    manifest = {
        "model": model.name,
        "version": version.version,
        "round": version.review_round,
        "artifact": {
            "sha256": version.artifact_sha256,
            "size": version.artifact_size,
            "types": version.artifact_types,
            "estimator_class": version.estimator_class,
            "sklearn_version": version.sklearn_version,
            "task": version.task,
        },
        "onnx_sha256": (onnx.metrics or {}).get("onnx_sha256", "") if onnx is not None else "",
        "classes": version.classes,
        "input_schema": version.input_schema,
        "favourable_class": version.favourable_class,
        "reason_texts": version.reason_texts,
        "label_column": version.label_column,
        "sensitive_features": version.sensitive_features,
        "personal": {"features": sorted(version.personal_features), "subject_field": version.subject_field},
        "card": version.card.as_dict(),
        "datasets": {
            "training": _dataset(version.training_dataset),
            "evaluation": _dataset(version.evaluation_dataset),
        },
        "lineage": {
            "parent": version.parent_id,
            "code_repository": version.code_repository,
            "code_commit": version.code_commit,
            "params": version.params,
        },
        "authors": {"created_by": version.created_by_id, "submitted_by": version.submitted_by_id},
        "checks": [
            {"kind": c.kind, "status": c.status, "gating": c.gating, "metrics": c.metrics, "policy": c.policy}
            for c in checks
        ],
        "risk_tier": model.effective_tier,
    }
    # The round's validation report in force (governance.validation): present only once one is
    # written, so the manifests of versions without one (all those approved before validation
    # existed) are unchanged.
    report = latest_validation(version)
    if report is not None:
        manifest["validation"] = {"id": report.pk, "sha256": content_hash(row_values(report))}
    return manifest


def latest_validation(version: ModelVersion) -> ValidationReport | None:
    """The latest validation report of the version's current round (None before any)."""
    return (
        ValidationReport.objects.filter(version=version, round=version.review_round).order_by("-created_at", "-pk")
    ).first()


def sha256(version: ModelVersion) -> str:
    return sha256_json(build(version))


def stored_version(version_id: int) -> ModelVersion:
    """The version with what its manifest reads, fresh from the database."""
    return ModelVersion.objects.select_related(
        "registered_model", "card", "training_dataset", "evaluation_dataset"
    ).get(pk=version_id)
