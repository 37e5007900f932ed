"""What the database refuses on the registry's governed tables, whoever asks (core.triggers):
a submitted version's governed columns and its card never change (a new version is the way),
a dataset's content never changes, and none of them is ever deleted."""

from __future__ import annotations

from core.triggers import Rule, changed

# Fixed once the version leaves draft: everything its manifest reads from the version row.
FROZEN_VERSION_COLUMNS = (
    "registered_model_id",
    "version",
    "artifact",
    "artifact_sha256",
    "artifact_size",
    "artifact_types",
    "estimator_class",
    "sklearn_version",
    "params",
    "task",
    "input_schema",
    "classes",
    "label_column",
    "sensitive_features",
    "personal_features",
    "subject_field",
    "training_dataset_id",
    "evaluation_dataset_id",
    "parent_id",
    "code_repository",
    "code_commit",
    "created_by_id",
    "created_at",
    "submitted_by_id",
    "favourable_class",
    "reason_texts",
)
SUBMITTED = "(SELECT status FROM lifecycle_modelversion WHERE id = OLD.version_id) <> 'draft'"

RULES = [
    Rule(
        "ledger_version_frozen",
        "lifecycle_modelversion",
        "UPDATE",
        f"OLD.status <> 'draft' AND {changed(*FROZEN_VERSION_COLUMNS)}",
        "ledger: a submitted version's governed columns never change (register a new version)",
    ),
    Rule(
        "ledger_version_no_delete",
        "lifecycle_modelversion",
        "DELETE",
        "1 = 1",
        "ledger: versions are governed state and are never deleted",
    ),
    Rule(
        "ledger_card_frozen",
        "lifecycle_modelcard",
        "UPDATE",
        SUBMITTED,
        "ledger: the model card of a submitted version never changes",
    ),
    Rule("ledger_card_no_delete", "lifecycle_modelcard", "DELETE", "1 = 1", "ledger: model cards are never deleted"),
    Rule(
        "ledger_dataset_frozen",
        "lifecycle_dataset",
        "UPDATE",
        changed("name", "version", "sha256", "size_bytes", "row_count", "columns", "created_by_id"),
        "ledger: a dataset's content and identity never change (store a new version)",
    ),
    Rule("ledger_dataset_no_delete", "lifecycle_dataset", "DELETE", "1 = 1", "ledger: datasets are never deleted"),
    Rule(
        "ledger_model_no_delete",
        "lifecycle_registeredmodel",
        "DELETE",
        "1 = 1",
        "ledger: registered models are never deleted",
    ),
]
