"""Webhook endpoints in the admin, for risk officers: add (the secret is shown once), change,
disable, rotate the secret; deliveries with every attempt (status, latency), read-only, with a
"send again" action. Every write goes through integrations.webhooks, which audits it."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from core.admin_site import is_officer
from core.errors import DomainError
from integrations import transport, webhooks
from integrations.events import EVENT_TYPE_CHOICES
from integrations.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


class OfficerOnly(admin.ModelAdmin):
    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_officer(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_officer(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # history stays: disable an endpoint instead


class EndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    event_types = forms.MultipleChoiceField(choices=EVENT_TYPE_CHOICES, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = WebhookEndpoint
        fields = ["name", "url", "event_types", "is_active"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            transport.resolve(url)
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from None
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(OfficerOnly):
    form = EndpointForm
    list_display = ["name", "url", "is_active", "disabled_reason", "created_by_username", "created_at"]
    readonly_fields = ["disabled_reason", "created_by_username", "created_at"]
    actions = ["rotate_secret"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return is_officer(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_officer(request)

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool) -> None:
        d = form.cleaned_data
        if change:
            saved = webhooks.update_endpoint(
                obj.pk,
                actor=request.user,
                name=d["name"],
                url=d["url"],
                event_types=list(d["event_types"]),
                is_active=d["is_active"],
            )
        else:
            saved, secret = webhooks.create_endpoint(
                actor=request.user, name=d["name"], url=d["url"], event_types=list(d["event_types"])
            )
            messages.warning(
                request, f"Signing secret of {saved.name} (shown this once; store it with the receiver): {secret}"
            )
        obj.pk = saved.pk

    @admin.action(description="Rotate the signing secret (the new one is shown once)")
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            secret = webhooks.rotate_secret(endpoint.pk, actor=request.user)
            messages.warning(request, f"New signing secret of {endpoint.name} (shown this once): {secret}")


class AttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ("number", "started_at", "status_code", "latency_ms", "error", "response_excerpt")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(OfficerOnly):
    list_display = ["event_type", "audit_seq", "endpoint", "status", "attempts", "next_attempt_at", "created_at"]
    list_filter = ["status", "event_type", "endpoint"]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    inlines = [AttemptInline]
    actions = ["send_again"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Send again now (a fresh 24 h retry window)")
    def send_again(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        from integrations.tasks import deliver_webhook_task

        for delivery in queryset:
            webhooks.redeliver(delivery.pk, actor=request.user)
            deliver_webhook_task.delay(delivery.pk)
        messages.success(request, f"{queryset.count()} deliveries sent again.")
