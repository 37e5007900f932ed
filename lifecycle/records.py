"""The registry's public records of datasets, versions and models: plain data, shared by the
API, the reports and the exports (no HTTP here)."""

from __future__ import annotations

from typing import Any

from lifecycle import materiality, selectors
from lifecycle.models import Dataset, ModelVersion, RegisteredModel


def dataset_record(d: Dataset) -> dict[str, Any]:
    return {
        "id": d.pk,
        "name": d.name,
        "version": d.version,
        "sha256": d.sha256,
        "rows": d.row_count,
        "columns": d.columns,
        "source": d.source,
        # "encrypted", "stored in clear (...)" or "key destroyed on <date>": the data itself is not
        # readable after that, its identity (name, version, SHA-256) stays
        "at_rest": d.at_rest,
        "key_destroyed_at": d.key_destroyed_at,
    }


def version_record(v: ModelVersion) -> dict[str, Any]:
    """The registry's part of a version's public record: everything but its checks and
    decisions, which governance adds (governance.records.version_data)."""
    return {
        "model": v.registered_model.name,
        "version": v.version,
        "status": v.status,
        "task": v.task,
        "artifact": {
            "sha256": v.artifact_sha256,
            "size": v.artifact_size,
            "estimator_class": v.estimator_class,
            "sklearn_version": v.sklearn_version,
            "types": v.artifact_types,
        },
        "params": v.params,
        "classes": v.classes,
        "personal_features": v.personal_features,
        "subject_field": v.subject_field,
        "input_schema": v.input_schema,
        "label_column": v.label_column,
        "sensitive_features": v.sensitive_features,
        "favourable_class": v.favourable,
        "reason_texts": v.reason_texts,
        "model_card": v.card.as_dict(),
        "model_card_sha256": v.card.content_hash(),
        "lineage": {
            "training_dataset": dataset_record(v.training_dataset),
            "evaluation_dataset": dataset_record(v.evaluation_dataset),
            "parents": [{"version": p.version, "artifact_sha256": p.artifact_sha256} for p in v.lineage()],
            "code_repository": v.code_repository,
            "code_commit": v.code_commit,
        },
        "review_round": v.review_round,
        "created_by": v.created_by.username,
        "created_at": v.created_at,
        "submitted_by": v.submitted_by.username if v.submitted_by else None,
        "submitted_at": v.submitted_at,
    }


def model_record(m: RegisteredModel, versions: list[ModelVersion]) -> dict[str, Any]:
    production = selectors.production_version(m)
    return {
        "name": m.name,
        "title": m.title,
        "description": m.description,
        "risk_tier": m.risk_tier,
        "owner": m.owner.username,
        "production_version": production.version if production else None,
        "approved_versions": [v.version for v in selectors.approved_versions(m)],
        "input_schema": production.input_schema if production else None,
        "versions": [{"version": v.version, "status": v.status, "created_at": v.created_at} for v in versions],
        **inventory_record(m),
        "kill_switch": kill_switch_record(m),
    }


def inventory_record(m: RegisteredModel) -> dict[str, Any]:
    """The model's inventory entry: kind, purpose, materiality and the tier it
    proposes, the tier in force, and the models it depends on and that depend on it."""
    inputs = {"exposure": m.exposure, "decisions_per_year": m.decisions_per_year, "affected_people": m.affected_people}
    return {
        "kind": m.kind,
        "purpose": m.purpose,
        "materiality": {**inputs, "proposed_tier": materiality.proposed_tier(**inputs)},
        "effective_risk_tier": m.effective_tier,
        "depends_on": sorted(d.depends_on.name for d in m.dependencies.select_related("depends_on")),
        "used_by": sorted(d.model.name for d in m.dependents.select_related("model")),
    }


def kill_switch_record(m: RegisteredModel) -> dict[str, Any]:
    """The model's stop and fallback (governance.killswitch), as the API and the reports show them."""
    fallback = m.fallback_version
    return {
        "stopped": m.stopped_at is not None,
        "stopped_at": m.stopped_at,
        "stopped_reason": m.stopped_reason,
        "fallback_version": fallback.version if fallback is not None else None,
    }
