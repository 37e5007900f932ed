"""People in the admin: roles are granted and removed only through core.role_changes, with a
justification, so every membership is an audit event (the plain group checkboxes are hidden)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import UserChangeForm

from core.errors import DomainError
from core.role_changes import grant_role, revoke_role
from core.roles import ALL_ROLES, roles_of

User = get_user_model()


class RoleChangeForm(UserChangeForm):
    roles = forms.MultipleChoiceField(
        choices=[(r, r) for r in ALL_ROLES], widget=forms.CheckboxSelectMultiple, required=False
    )
    role_justification = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text="Required when the roles change: recorded in the audit trail with the change.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["roles"].initial = sorted(roles_of(self.instance))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        before = set(roles_of(self.instance)) if self.instance.pk else set()
        if set(data.get("roles") or []) != before and not (data.get("role_justification") or "").strip():
            self.add_error("role_justification", "Say why the roles change.")
        return data


class AuditedUserAdmin(UserAdmin):
    form = RoleChangeForm
    list_display = ["username", "email", "first_name", "last_name", "roles", "is_active", "is_staff"]
    list_filter = ["groups", "is_active", "is_staff", "is_superuser"]
    fieldsets = tuple(
        (name, {**opts, "fields": tuple(f for f in opts["fields"] if f not in ("groups", "user_permissions"))})
        for name, opts in UserAdmin.fieldsets or ()
    ) + (("Roles", {"fields": ("roles", "role_justification")}),)  # type: ignore[assignment]

    def get_queryset(self, request: Any) -> Any:
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description="roles")
    def roles(self, obj: Any) -> str:
        names = sorted(g.name for g in obj.groups.all() if g.name in ALL_ROLES)
        return ", ".join(names) or "—"

    def save_related(self, request: Any, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        user = form.instance
        wanted, had = set(form.cleaned_data.get("roles") or []), set(roles_of(user))
        text = form.cleaned_data.get("role_justification", "")
        try:
            for role in sorted(wanted - had):
                grant_role(user, role, actor=request.user, justification=text)
            for role in sorted(had - wanted):
                revoke_role(user, role, actor=request.user, justification=text)
        except DomainError as exc:
            messages.error(request, f"Roles not changed: {exc.message}")


admin.site.unregister(User)
admin.site.register(User, AuditedUserAdmin)
