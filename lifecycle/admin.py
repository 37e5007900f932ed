from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from lifecycle.models import ModelCard, ModelVersion, RegisteredModel


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
