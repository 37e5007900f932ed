"""The risk officers' workplace in the Django admin: the review queue, the review page with
its decision actions, policies; and the read-only audit trail, checks, decisions and
deployments. Every action calls one function of governance.workflow (which enforces the
rules again and audits refusals)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from core.actors import Actor
from core.admin_site import OfficerReadOnlyAdmin, ReadOnlyAdmin, is_officer
from core.errors import DomainError
from core.models import AuditEvent
from core.periods import parse_moment
from core.roles import RISK_OFFICERS, has_role
from governance import (
    action_buttons,
    dataset_rules,
    materiality,
    operations,
    review,
    rules,
    services,
    snapshots,
    validation,
    workflow,
)
from governance import datasets as dataset_services
from governance import findings as finding_services
from governance import shadow as shadows
from governance.models import CheckRun, Decision, Deployment, Finding, Policy, VersionReview
from governance.policies import update_policy
from lifecycle.models import Dataset, ModelVersion, RegisteredModel, RiskTier, Status


class ModelFilter(admin.SimpleListFilter):
    title = "model"
    parameter_name = "model"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(m, m) for m in RegisteredModel.objects.values_list("name", flat=True)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value():
            return queryset.filter(target_repr__startswith=f"{self.value()} v")
        return queryset


@admin.register(AuditEvent)
class AuditEventAdmin(OfficerReadOnlyAdmin):
    """The audit trail, read-only: nobody adds, changes or deletes events here."""

    list_display = ["seq", "created_at", "actor_username", "action", "target_repr"]
    list_filter = ["action", "actor_username", ModelFilter, ("created_at", admin.DateFieldListFilter)]
    search_fields = ["target_repr", "actor_username", "action"]
    ordering = ["-seq"]


@admin.register(CheckRun)
class CheckRunAdmin(OfficerReadOnlyAdmin):
    list_display = ["version", "round", "kind", "status", "attempts", "duration_ms", "finished_at"]
    list_filter = ["kind", "status"]


@admin.register(Decision)
class DecisionAdmin(OfficerReadOnlyAdmin):
    list_display = ["version", "kind", "actor_username", "override", "created_at"]
    list_filter = ["kind", "override"]


@admin.register(Deployment)
class DeploymentAdmin(OfficerReadOnlyAdmin):
    list_display = ["registered_model", "version", "deployed_at", "deployed_by", "ended_at", "end_reason"]
    list_filter = ["registered_model"]


class PolicyForm(forms.ModelForm):
    """The policy's values and why they change: the justification goes to the audit event."""

    justification = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text="Why these values change (required; recorded in the audit trail with the change).",
    )

    class Meta:
        model = Policy
        fields = [*(f.name for f in Policy._meta.fields if f.name not in ("id", "name", "updated_at")), "justification"]


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    """Risk officers edit thresholds here, with a justification; the save goes through
    update_policy (audited). A superuser without the role sees the policy read-only."""

    form = PolicyForm
    list_display = ["name", "min_accuracy", "max_fairness_difference", "min_fairness_ratio", "approvals_high"]
    readonly_fields = ["name", "updated_at"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_officer(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_officer(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return has_role(request.user, RISK_OFFICERS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Policy, form: Any, change: bool) -> None:
        changes = {name: form.cleaned_data[name] for name in form.changed_data if name != "justification"}
        update_policy(obj.pk, actor=request.user, changes=changes, justification=form.cleaned_data["justification"])


ACTION_LABELS = {
    "approve": "Approve",
    "reject": "Reject",
    "request_changes": "Request changes",
    "deploy": "Deploy to production",
    "rollback": "Roll back to the previous deployment",
    "suspend": "Suspend (stop serving)",
    "reinstate": "Reinstate",
    "recertify": "Recertify (over the monitoring evidence now)",
    "shadow": "Put in shadow (replay production's traffic)",
    "end_shadow": "End the shadow",
    "retire": "Retire",
}


def _end_shadows(version: ModelVersion, actor: Actor) -> None:
    for running in version.shadows.filter(ended_at__isnull=True):
        shadows.end_shadow(running.pk, actor=actor)


# What each button of the review page does: one entry per name in rules.ACTIONS (the buttons, in
# the order pages show them; a test keeps the two equal), and the tier form beside them.
REVIEW_VERBS: dict[str, Callable[[ModelVersion, Any, str, HttpRequest], object]] = {
    "approve": lambda v, who, text, request: workflow.approve_version(
        v.pk, actor=who, justification=text, override=request.POST.get("override") == "on"
    ),
    "reject": lambda v, who, text, _: workflow.reject_version(v.pk, actor=who, justification=text),
    "request_changes": lambda v, who, text, _: workflow.request_changes(v.pk, actor=who, justification=text),
    "deploy": lambda v, who, text, _: workflow.deploy_version(v.pk, actor=who, justification=text),
    "rollback": lambda v, who, text, _: operations.rollback_model(v.registered_model_id, actor=who, justification=text),
    "suspend": lambda v, who, text, _: operations.suspend_version(v.pk, actor=who, reason=text),
    "reinstate": lambda v, who, text, _: operations.reinstate_version(v.pk, actor=who, justification=text),
    "recertify": lambda v, who, text, _: operations.recertify_version(
        v.pk, actor=who, justification=text, snapshot=snapshots.take(v)
    ),
    "shadow": lambda v, who, text, _: shadows.start_shadow(v.pk, actor=who, justification=text),
    "end_shadow": lambda v, who, text, _: _end_shadows(v, who),
    "retire": lambda v, who, text, _: operations.retire_version(v.pk, actor=who, justification=text),
    "set_tier": lambda v, who, text, request: services.set_risk_tier(
        v.registered_model_id, actor=who, tier=request.POST.get("tier", ""), justification=text
    ),
}


TYPED_JUSTIFICATION = "review-justification"

DONE_LABELS = {
    "approve": "Approved",
    "reject": "Rejected",
    "request_changes": "Changes requested",
    "deploy": "Deployed",
    "rollback": "Rolled back",
    "suspend": "Suspended",
    "reinstate": "Reinstatement recorded",
    "recertify": "Recertification recorded",
    "shadow": "Put in shadow",
    "end_shadow": "Shadow ended",
    "retire": "Retired",
    "set_tier": "Effective risk tier set",
}


class EffectiveTierFilter(admin.SimpleListFilter):
    """The tier in force (the column's): the one a risk officer set, else the proposed one."""

    title = "risk tier (effective)"
    parameter_name = "tier"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(t.value, t.label) for t in RiskTier]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if not self.value():
            return queryset
        return queryset.filter(
            Q(registered_model__effective_risk_tier=self.value())
            | Q(registered_model__effective_risk_tier="", registered_model__risk_tier=self.value())
        )


@admin.register(VersionReview)
class VersionReviewAdmin(OfficerReadOnlyAdmin):
    """The review queue (in_review, oldest first) and every version's review page."""

    list_display = ["version_link", "tier", "status_badge", "check_badges", "submitted"]
    list_filter = ["status", EffectiveTierFilter]
    list_display_links = None  # version_link is the link (the admin's own would nest an empty one around it)
    ordering = ["submitted_at", "pk"]
    list_select_related = ["registered_model", "submitted_by"]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not request.GET:
            return HttpResponseRedirect(f"{request.path}?status__exact={Status.IN_REVIEW}")
        return super().changelist_view(
            request, {"title": "Review queue (oldest submission first)", **(extra_context or {})}
        )

    @admin.display(description="submitted", ordering="submitted_at")
    def submitted(self, obj: ModelVersion) -> str:
        if obj.submitted_at is None:
            return "—"
        return f"{obj.submitted_at:%Y-%m-%d %H:%M} by {obj.submitted_by.username if obj.submitted_by else '?'}"

    @admin.display(description="version")
    def version_link(self, obj: ModelVersion) -> str:
        url = reverse("admin:governance_versionreview_change", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, obj)

    @admin.display(description="risk tier (effective)", ordering="registered_model__effective_risk_tier")
    def tier(self, obj: ModelVersion) -> str:
        return render_to_string("lifecycle/_tier.html", {"m": obj.registered_model})

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: ModelVersion) -> str:
        return format_html('<span class="badge status-{}">{}</span>', obj.status, obj.get_status_display())

    @admin.display(description="checks")
    def check_badges(self, obj: ModelVersion) -> str:
        runs = CheckRun.objects.filter(version=obj, round=obj.review_round).order_by("kind")
        return format_html_join(
            "", '<span class="badge check-{}">{}: {}</span> ', ((c.status, c.kind, c.status) for c in runs)
        )

    class Media:
        css = {"all": ["app.css"]}

    def get_urls(self) -> list[Any]:
        custom = [
            path(
                "<int:object_id>/decide/",
                self.admin_site.admin_view(require_POST(self.decide_view)),
                name="governance_versionreview_decide",
            )
        ]
        return custom + super().get_urls()

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not is_officer(request):
            return super().change_view(request, object_id, form_url, extra_context)
        version = get_object_or_404(ModelVersion.objects.select_related("registered_model"), pk=object_id)
        actions = rules.available_actions(version, request.user)
        typed = request.session.pop(TYPED_JUSTIFICATION, None)  # a refused decision keeps what was typed
        typed = typed if isinstance(typed, dict) and typed.get("for") == version.pk else {}
        context = {
            "typed": typed,
            "blocked": [
                (b.code, ACTION_LABELS[b.code], b.reason) for b in action_buttons.blocked_actions(version, request.user)
            ],
            **self.admin_site.each_context(request),
            "title": f"Review {version}",
            "opts": self.model._meta,
            "v": version,
            "card": version.card,
            "parents": version.lineage(),
            "checks": review.checks_for_display(version),
            "decisions": review.decisions_for_display(version),
            "diff": review.metric_diff(version),
            "actions": [(a, ACTION_LABELS[a]) for a in actions],
            "failing_checks": review.needs_override(version) if "approve" in actions else [],
            "progress": rules.approvals_progress(version),
            "change": materiality.current(version),
            "validations": validation.reports_of(version),
            "tiers": RiskTier.choices,
            "can_set_tier": bool(rules.can_set_tier(version.registered_model, request.user)),
            "decide_url": reverse("admin:governance_versionreview_decide", args=[version.pk]),
            "findings": Finding.objects.filter(version=version).select_related("owner")[:50],
            "monitoring_url": reverse("monitoring:version", args=[version.registered_model.name, version.version]),
            "shadow": version.shadows.select_related("started_by").first(),
            "stuck_checks": services.stuck_checks(version),
            "comparisons": shadows.display(version),
        }
        return TemplateResponse(request, "admin/governance/review.html", context)

    def decide_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        version = get_object_or_404(ModelVersion, pk=object_id)
        back = reverse("admin:governance_versionreview_change", args=[version.pk])
        action = request.POST.get("action", "")
        justification = request.POST.get("justification", "")
        try:
            if action == "requeue_checks":
                requeued = services.requeue_checks(version.pk, actor=request.user)
                messages.success(request, f"{len(requeued)} stuck check(s) sent to the workers again.")
                return HttpResponseRedirect(back)
            verb = REVIEW_VERBS.get(action)
            if verb is None:
                messages.error(request, f"Unknown action {action!r}.")
                return HttpResponseRedirect(back)
            verb(version, request.user, justification, request)
        except DomainError as exc:
            messages.error(request, f"Refused: {exc.message}")
            request.session[TYPED_JUSTIFICATION] = {"for": version.pk, "action": action, "text": justification}
            return HttpResponseRedirect(back)
        version.refresh_from_db()
        if action == "set_tier":
            done, required = rules.approvals_progress(version)
            tier = version.registered_model.effective_tier
            messages.success(
                request, f"Effective risk tier set to {tier}: {version} needs {required} approval(s), {done} valid now."
            )
        elif action == "approve" and version.status == Status.IN_REVIEW:
            done, required = rules.approvals_progress(version)
            messages.success(
                request, f"Approval {done} of {required} recorded; another risk officer must approve {version}."
            )
        else:
            flagged = (
                " (override of failed checks)" if action == "approve" and request.POST.get("override") == "on" else ""
            )
            messages.success(
                request, f"{DONE_LABELS[action]}{flagged}: {version} is now {version.get_status_display().lower()}."
            )
        return HttpResponseRedirect(back)


@admin.register(Finding)
class FindingAdmin(admin.ModelAdmin):
    """The findings register: risk officers assign, comment and close findings here; every
    change goes through governance.findings (audited), never through the model form."""

    list_display = ["pk", "version", "severity", "title", "owner", "due_at", "state"]
    list_filter = ["severity", ("closed_at", admin.EmptyFieldListFilter)]
    search_fields = ["title", "version__registered_model__name"]
    list_select_related = ["version__registered_model", "owner"]
    ordering = ["closed_at", "due_at"]

    @admin.display(description="status")
    def state(self, obj: Finding) -> str:
        return "open" if obj.is_open else f"closed {obj.closed_at:%Y-%m-%d}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_officer(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_officer(request) or super().has_view_permission(request, obj)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_officer(request) or super().has_module_permission(request)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        finding = get_object_or_404(Finding.objects.select_related("version__registered_model", "owner"), pk=object_id)
        back = reverse("admin:governance_finding_change", args=[finding.pk])
        if request.method == "POST" and is_officer(request):
            action = request.POST.get("action", "")
            try:
                if action == "assign":
                    owner = get_user_model().objects.filter(pk=request.POST.get("owner") or 0).first()
                    due = request.POST.get("due_at", "").strip()
                    finding_services.assign_finding(
                        finding.pk,
                        actor=request.user,
                        owner=owner,
                        due_at=parse_moment(due, field="due date") if due else None,
                    )
                    messages.success(request, f"Finding #{finding.pk} assigned to {owner or 'nobody'}.")
                elif action == "comment":
                    finding_services.comment_on_finding(
                        finding.pk, actor=request.user, text=request.POST.get("text", "")
                    )
                    messages.success(request, "Comment recorded.")
                elif action == "close":
                    finding_services.close_finding(
                        finding.pk, actor=request.user, justification=request.POST.get("justification", "")
                    )
                    messages.success(request, f"Finding #{finding.pk} closed.")
                else:
                    messages.error(request, f"Unknown action {action!r}.")
            except DomainError as exc:
                messages.error(request, f"Refused: {exc.message}")
            return HttpResponseRedirect(back)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Finding #{finding.pk}: {finding.title}",
            "opts": self.model._meta,
            "f": finding,
            "comments": finding.comments.all(),
            "people": get_user_model().objects.filter(is_active=True).order_by("username"),
            "can_manage": is_officer(request) and finding.is_open,
            "review_url": reverse("admin:governance_versionreview_change", args=[finding.version_id]),
        }
        return TemplateResponse(request, "admin/governance/finding.html", context)


@admin.register(Dataset)
class DatasetAdmin(ReadOnlyAdmin):
    """The registry's datasets, read-only, and the risk officers' action that destroys a
    dataset's key (governance.datasets: refused while a version that used it may be served, and
    until the policy's retention has passed; audited)."""

    list_display = ["name", "version", "row_count", "sha256", "at_rest", "created_at"]
    search_fields = ["name", "sha256"]
    actions = ["destroy_key"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_officer(request) or super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_officer(request) or super().has_view_permission(request, obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Dataset]:
        return super().get_queryset(request).select_related("data_key")

    @admin.display(description="at rest")
    def at_rest(self, obj: Dataset) -> str:
        return obj.at_rest

    @admin.action(description="Destroy the key of the selected datasets (their data can never be read again)")
    def destroy_key(self, request: HttpRequest, queryset: QuerySet[Dataset]) -> HttpResponse | None:
        if not is_officer(request):
            messages.error(request, "Only risk officers destroy a dataset's key.")
            return None
        justification = request.POST.get("justification", "").strip()
        if request.POST.get("confirm") != "yes" or not justification:
            context = {
                **self.admin_site.each_context(request),
                "title": "Destroy the keys of datasets",
                "opts": self.model._meta,
                "datasets": [(d, dataset_rules.can_destroy_dataset_key(d, request.user)) for d in queryset],
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "missing_justification": request.POST.get("confirm") == "yes",
            }
            return TemplateResponse(request, "admin/governance/destroy_dataset_key.html", context)
        for dataset in queryset:
            try:
                key = dataset_services.destroy_dataset_key(dataset.pk, actor=request.user, justification=justification)
            except DomainError as exc:
                messages.error(request, f"Refused: {exc.message}")
            else:
                messages.success(request, f"The key of dataset {dataset} was destroyed on {key.destroyed_at:%Y-%m-%d}.")
        return None
