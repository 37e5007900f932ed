from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from core.roles import RISK_OFFICERS, has_role
from lifecycle.models import MlflowImport, ModelCard, ModelVersion, RegisteredModel


class ReadOnlyAdmin(admin.ModelAdmin):
    """Registry rows change only through lifecycle.services and governance.workflow."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
class MlflowImportAdmin(ReadOnlyAdmin):
    """An imported version's MLflow lineage: evidence, read by risk officers."""

    list_display = ["version", "run_id", "mlflow_version", "imported_by_username", "imported_at"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return has_role(request.user, RISK_OFFICERS) or request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)
