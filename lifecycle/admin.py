from __future__ import annotations

from django.contrib import admin

from core.admin_site import OfficerReadOnlyAdmin, ReadOnlyAdmin
from lifecycle.models import MlflowImport, ModelCard, ModelVersion, RegisteredModel


@admin.register(RegisteredModel)
class RegisteredModelAdmin(ReadOnlyAdmin):
    list_display = ["name", "title", "risk_tier", "owner", "created_at"]
    list_filter = ["risk_tier"]
    search_fields = ["name", "title"]


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "status", "task", "estimator_class", "created_by", "submitted_at"]
    list_filter = ["status", "task", "registered_model__risk_tier"]
    search_fields = ["registered_model__name", "artifact_sha256"]


# Datasets are in the risk officers' admin (governance.admin): destroying a dataset's key follows
# governance's rules (the versions that used it, the policy's retention).


@admin.register(ModelCard)
class ModelCardAdmin(ReadOnlyAdmin):
    list_display = ["version", "updated_at"]


@admin.register(MlflowImport)
class MlflowImportAdmin(OfficerReadOnlyAdmin):
    """An imported version's MLflow lineage: evidence, read by risk officers."""

    list_display = ["version", "run_id", "mlflow_version", "imported_by_username", "imported_at"]
