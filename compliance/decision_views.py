"""The auditor workspace's decisions: "Find a decision" by business key, one decision's page
(inputs, output, reason codes, counterfactual, human reviews) and its receipt. Thin views."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from compliance import explanation_chart, oversight_views, receipts
from compliance.views import _require_auditor, pdf_response
from core.errors import DomainError
from governance import rules
from serving import decisions, personal
from serving import selectors as serving_selectors
from serving.decision_api import find_row
from serving.models import DecisionReview


@login_required
@require_GET
def find_decision(request: HttpRequest) -> HttpResponse:
    _require_auditor(request)
    key = request.GET.get("key", "").strip()
    found = serving_selectors.decisions_with_key(key) if key else []
    if len(found) == 1:
        record, row = found[0]
        return redirect("audit:decision", prediction_id=f"{record.public_id}.{row}")
    rows = [
        {"id": f"{r.public_id}.{row}", "record": r, "row": row, "decision": r.outputs["predictions"][row]}
        for r, row in found
    ]
    return render(request, "compliance/decisions.html", {"key": key, "rows": rows})


def _require_decision_reader(request: HttpRequest) -> None:
    """Auditors and risk officers, and case officers who work the oversight queue (the one
    rule: governance.rules.can_read_decision)."""
    rule = rules.can_read_decision(request.user, received_it=False)
    if not rule:
        raise PermissionDenied(rule.reason)


@login_required
@require_GET
def decision_detail(request: HttpRequest, prediction_id: str) -> HttpResponse:
    _require_decision_reader(request)
    erased = False
    try:
        record, row = find_row(prediction_id)
        explanation = decisions.explanation_of(record, row, actor=request.user).payload
    except DomainError as exc:
        if getattr(exc, "code", "") != "inputs_erased":
            return render(request, "compliance/error.html", {"message": exc.message}, status=exc.status)
        # an erased subject's decision stays: the decision, its proof and its receipt (not its reasons)
        erased, explanation = True, {}
    inputs, keys = personal.reveal_record(record)
    context = {
        "r": record,
        "row": row,
        "prediction_id": prediction_id,
        "business_key": keys[row] if row < len(keys) else "",
        "inputs": list(inputs[row].items()),
        "decision": record.outputs["predictions"][row],
        "e": explanation,
        # (SVG built from numbers and escaped names only)
        "waterfall": mark_safe(explanation_chart.waterfall(explanation)),  # noqa: S308
        "erased": erased,
        "proof": receipts.verified_proof(record),
        "reviews": DecisionReview.objects.filter(record=record, row=row).order_by("seq"),
        **oversight_views.page_context(request, record, row, prediction_id),
    }
    return render(request, "compliance/decision.html", context)


@login_required
@require_GET
def decision_receipt(request: HttpRequest, prediction_id: str) -> HttpResponse:
    _require_decision_reader(request)
    try:
        record, row = find_row(prediction_id)
        report = receipts.generate_receipt(record, row, actor=request.user)
    except DomainError as exc:
        return render(request, "compliance/error.html", {"message": exc.message}, status=exc.status)
    return pdf_response(report, f"decision-receipt-{prediction_id}.pdf")
