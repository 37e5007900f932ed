from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from core.roles import RISK_OFFICERS, has_role
from serving import erasure
from serving.models import ApiKey, LegalHold
from serving.services import revoke_api_key


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created with `manage.py create_api_key` (the raw key is printed once);
    here they can only be looked at and revoked."""

    list_display = ["name", "prefix", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    readonly_fields = ["name", "prefix", "user", "created_at", "created_by_username", "last_used_at", "revoked_at"]
    exclude = ["key_hash"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            revoke_api_key(key.pk, actor=request.user)
        messages.success(request, f"Revoked {queryset.count()} key(s).")


@admin.register(LegalHold)
class LegalHoldAdmin(admin.ModelAdmin):
    """Risk officers place a legal hold on a model's log (no personal data of it is erased, on
    request or by retention) and release it; both are audited (serving.personal)."""

    list_display = ["model_name", "reason", "placed_by", "placed_at", "released_at"]
    list_filter = [("released_at", admin.EmptyFieldListFilter)]
    fields = ["model_name", "reason"]
    actions = ["release"]

    def _officer(self, request: HttpRequest) -> bool:
        return has_role(request.user, RISK_OFFICERS)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._officer(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._officer(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._officer(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._officer(request) and obj is None  # the action list; a hold itself is never edited

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: LegalHold, form: Any, change: bool) -> None:
        placed = erasure.place_hold(model_name=obj.model_name, reason=obj.reason, actor=request.user)
        obj.pk = placed.pk

    @admin.action(description="Release the selected legal holds")
    def release(self, request: HttpRequest, queryset: QuerySet[LegalHold]) -> None:
        for hold in queryset:
            erasure.release_hold(hold.pk, actor=request.user)
        messages.success(request, f"{queryset.count()} legal hold(s) released.")
