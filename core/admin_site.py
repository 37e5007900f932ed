"""The admin as part of the product: the application's name, and the risk officers' door. The
review queue is the risk officers' workplace, so holding the role opens the admin: being staff is
not a second flag to keep in step with the role (granting the role is the one audited act)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from core.roles import RISK_OFFICERS, has_role


def may_enter_admin(user: Any) -> bool:
    return bool(user.is_active and (user.is_staff or has_role(user, RISK_OFFICERS)))


class OfficerAuthenticationForm(AdminAuthenticationForm):
    def confirm_login_allowed(self, user: Any) -> None:
        if not may_enter_admin(user):
            raise ValidationError(
                self.error_messages["invalid_login"],
                code="invalid_login",
                params={"username": self.username_field.verbose_name},
            )


class GovernanceAdminSite(AdminSite):
    site_header = "Model governance"
    site_title = "Model governance"
    index_title = "Review and administration"
    login_form = OfficerAuthenticationForm

    def has_permission(self, request: Any) -> bool:
        return may_enter_admin(request.user)


def is_officer(request: Any) -> bool:
    """Risk officers (and superusers) read the admin's governance pages."""
    return has_role(request.user, RISK_OFFICERS) or request.user.is_superuser


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that change only through their services (and their audit events): shown, never
    added, changed or deleted in the admin."""

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


class OfficerReadOnlyAdmin(ReadOnlyAdmin):
    """Read-only, and only for risk officers."""

    def has_module_permission(self, request: Any) -> bool:
        return is_officer(request)

    def has_view_permission(self, request: Any, obj: Any = None) -> bool:
        return is_officer(request)
