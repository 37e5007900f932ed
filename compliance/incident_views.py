"""The incident register page (auditors and risk officers read it; risk officers register an
incident from it) and an incident's page. Thin: parse, call compliance.incidents, render."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from compliance import incidents
from compliance.models import Incident, IncidentSeverity
from core.errors import DomainError, NotFound
from core.roles import RISK_OFFICERS, has_role, reads_full_audit_trail
from lifecycle.models import RegisteredModel


@login_required
def incident_register(request: HttpRequest) -> HttpResponse:
    if not reads_full_audit_trail(request.user):
        raise PermissionDenied("Only auditors and risk officers read the incident register.")
    error = None
    if request.method == "POST":
        ids = [p.strip() for p in request.POST.get("prediction_ids", "").replace("\n", ",").split(",") if p.strip()]
        try:
            incident = incidents.register_incident(
                actor=request.user,
                model=request.POST.get("model", ""),
                severity=request.POST.get("severity", ""),
                aware_at=request.POST.get("aware_at", ""),
                summary=request.POST.get("summary", ""),
                corrective_actions=request.POST.get("corrective_actions", ""),
                prediction_ids=ids,
            )
        except DomainError as exc:
            if exc.status == 403:
                raise PermissionDenied(exc.message) from None
            error = exc.message
        else:
            return redirect("audit:incident", incident.public_id)
    now = timezone.now()
    rows = [
        {"i": i, "overdue": i.report_due <= now, "left": i.report_due - now}
        for i in Incident.objects.select_related("registered_model", "version")[:500]
    ]
    return render(
        request,
        "compliance/incidents.html",
        {
            "rows": rows,
            "error": error,
            "may_register": has_role(request.user, RISK_OFFICERS),
            "models": RegisteredModel.objects.order_by("name"),
            "severities": IncidentSeverity.choices,
            "posted": request.POST if error else {},
        },
    )


@login_required
def incident_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    try:
        incident = incidents.get_incident(public_id, actor=request.user)
    except NotFound:
        raise Http404("No such incident.") from None
    except DomainError as exc:
        raise PermissionDenied(exc.message) from None
    return render(
        request,
        "compliance/incident.html",
        {
            "i": incident,
            "record": incidents.incident_record(incident),
            "freeze": incidents.verify_freeze(incident),
            "overdue": incident.report_due <= timezone.now(),
        },
    )
