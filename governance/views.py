"""The pages where a version meets governance: the home page (each role's work), a version's
page with its checks and decisions, the status poll while checks run, and submitting a draft
for review. Thin: parse, call one function, render."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from core.errors import DomainError
from core.roles import AUDITORS, DATA_SCIENTISTS, RISK_OFFICERS, VALIDATORS, has_role, roles_of
from core.selectors import audit_events_visible_to
from governance import benchmark, finding_work, review, rules, validation, workflow
from governance.models import VALIDATION_SECTIONS, CheckRun, Conclusion, Decision
from governance.selectors import engine_for, versions_pending_review
from lifecycle.errors import SubmissionInvalid
from lifecycle.models import ModelVersion, Status
from lifecycle.views import visible_version


@login_required
def home(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    context: dict[str, Any] = {"roles": sorted(roles_of(user))}
    if has_role(user, DATA_SCIENTISTS):
        mine = ModelVersion.objects.filter(created_by=user).select_related("registered_model")
        context["my_drafts"] = mine.filter(status=Status.DRAFT)
        context["my_in_progress"] = mine.filter(status__in=[Status.CHECKING, Status.IN_REVIEW])
        context["my_recent"] = mine.order_by("-created_at")[:10]
        context["my_decisions"] = (
            Decision.objects.filter(version__created_by=user)
            .select_related("version__registered_model")
            .order_by("-created_at")[:10]
        )
    if has_role(user, RISK_OFFICERS):
        context["review_queue"] = versions_pending_review()
    context["assigned"] = finding_work.assigned_to(user)
    context["recent_events"] = audit_events_visible_to(user).order_by("-seq")[:8]
    return render(request, "governance/home.html", context)


@login_required
def version_detail(request: HttpRequest, name: str, version: int) -> HttpResponse:
    v = visible_version(request, name, version)
    events = (
        audit_events_visible_to(request.user)
        .filter(target_type="lifecycle.modelversion", target_id=str(v.pk))
        .order_by("seq")
    )
    return render(
        request,
        "governance/version_detail.html",
        {
            "v": v,
            "card": v.card,
            "parents": v.lineage(),
            "events": events,
            "can_edit": v.is_editable and has_role(request.user, DATA_SCIENTISTS),
            "can_submit": bool(rules.can_submit(v, request.user)),
            "checks": review.checks_for_display(v),
            "decisions": review.decisions_for_display(v),
            "engine": engine_for(v),
        },
    )


@login_required
def version_status(request: HttpRequest, name: str, version: int) -> JsonResponse:
    """Polled by the version page while checks run."""
    v = visible_version(request, name, version)
    checks = CheckRun.objects.filter(version=v, round=v.review_round).order_by("kind")
    return JsonResponse(
        {
            "status": v.status,
            "status_label": v.get_status_display(),
            "checks": [{"kind": c.kind, "status": c.status} for c in checks],
        }
    )


@login_required
@require_POST
def version_submit(request: HttpRequest, name: str, version: int) -> HttpResponse:
    v = visible_version(request, name, version)
    try:
        workflow.submit_version(v.pk, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
        if exc.status == 403:
            raise PermissionDenied(exc.message)
    else:
        v.refresh_from_db()
        if v.status == Status.CHECKING:
            messages.success(request, f"{v} was submitted: its checks are running.")
        else:
            messages.success(request, f"{v} was submitted and checked: it now waits for a risk officer's review.")
    return redirect(v.get_absolute_url())


@login_required
def version_validation(request: HttpRequest, name: str, version: int) -> HttpResponse:
    """The validation page: the version's reports, the benchmark and sensitivity
    analysis to cite (computed on request), and for an independent validator the report form."""
    v = visible_version(request, name, version)
    may = rules.can_validate(v, request.user)
    form: dict[str, Any] = {"conclusion": "", "sections": {}, "conditions": ""}
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        if not may and may.forbidden:
            raise PermissionDenied(may.reason)
        form = {
            "conclusion": request.POST.get("conclusion", ""),
            "sections": {n: request.POST.get(n, "") for n, _ in VALIDATION_SECTIONS},
            "conditions": request.POST.get("conditions", ""),
        }
        try:
            validation.record_validation(
                v.pk,
                actor=request.user,
                conclusion=form["conclusion"],
                sections=form["sections"],
                conditions=[line for line in form["conditions"].splitlines() if line.strip()],
            )
        except SubmissionInvalid as exc:
            errors = exc.errors
        except DomainError as exc:
            errors = {"__all__": [exc.message]}
        else:
            messages.success(request, f"Your validation report on {v} was recorded.")
            return redirect("lifecycle:version-validation", name=name, version=version)
    evidence = None
    if request.GET.get("benchmark") and roles_of(request.user) & {VALIDATORS, RISK_OFFICERS, AUDITORS}:
        try:
            evidence = benchmark.benchmark(v)
        except DomainError as exc:
            messages.error(request, exc.message)
    return render(
        request,
        "governance/validation.html",
        {
            "v": v,
            "reports": validation.reports_of(v),
            "in_force": rules.latest_validation(v),
            "may_validate": bool(may),
            "why_not": may.reason,
            "sections": [
                (n, t, form["sections"].get(n, ""), errors.get(f"sections.{n}", [])) for n, t in VALIDATION_SECTIONS
            ],
            "form": form,
            "general_errors": errors.get("__all__", []) + errors.get("sections", []),
            "errors": {k: v for k, v in errors.items() if k in ("conclusion", "conditions")},
            "conclusions": Conclusion.choices,
            "benchmark": evidence,
        },
    )
