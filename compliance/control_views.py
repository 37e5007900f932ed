"""The control map page of a model: auditors and risk officers read it as of a date; a risk
officer attests a control from it. Thin: parse, call compliance.controls, render."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from compliance import controls
from compliance.control_api import as_of
from core.errors import DomainError
from core.roles import RISK_OFFICERS, has_role, reads_full_audit_trail
from lifecycle.models import RegisteredModel


@login_required
def model_controls(request: HttpRequest, name: str) -> HttpResponse:
    if not reads_full_audit_trail(request.user):
        raise PermissionDenied("Only auditors and risk officers read the control map.")
    model = get_object_or_404(RegisteredModel, name=name)
    error = None
    if request.method == "POST":
        try:
            controls.attest_control(
                model.pk, request.POST.get("control", ""), actor=request.user, statement=request.POST.get("statement")
            )
        except DomainError as exc:
            if exc.status == 403:
                raise PermissionDenied(exc.message) from None
            error = exc.message
        else:
            return redirect(reverse("audit:controls", args=[name]) + "#" + request.POST.get("control", ""))
    wanted = request.GET.get("as_of", "")
    try:
        moment = as_of(wanted)
    except DomainError as exc:
        error, moment = exc.message, as_of("")
    mapped = controls.control_map(model, moment)
    return render(
        request,
        "compliance/controls.html",
        {
            **mapped,
            "model": model,
            "wanted": wanted,
            "error": error,
            "may_attest": has_role(request.user, RISK_OFFICERS),
        },
    )
