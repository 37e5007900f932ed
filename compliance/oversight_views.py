"""The human-oversight pages (docs/design.md, "Human oversight and contestation"): the queue case
officers work, oldest first with due times, and the two forms on a decision's page: confirm or
override it, and answer a contestation. Thin: serving.oversight and serving.contest hold the rules."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from core.errors import DomainError
from serving import contest, decisions, oversight
from serving.decision_api import find_row
from serving.models import Contestation, PredictionLog, ReviewAction

SESSION_FORM = "oversight-form"


def _require_worker(request: HttpRequest) -> None:
    if not oversight.may_work_queue(request.user):
        raise PermissionDenied("Only case officers and risk officers work the oversight queue.")


@login_required
@require_GET
def oversight_queue(request: HttpRequest) -> HttpResponse:
    _require_worker(request)
    return render(request, "compliance/oversight_queue.html", {"entries": oversight.queue(), "now": timezone.now()})


def parse_decision(text: str, record: PredictionLog) -> Any:
    """The final decision as typed: matched to one of the model's classes by its text, else JSON."""
    classes = (record.outputs or {}).get("classes") or []
    for c in classes:
        if str(c) == text.strip():
            return c
    try:
        return json.loads(text)
    except ValueError:
        return text.strip()


def _typed(request: HttpRequest) -> dict[str, str]:
    return {k: request.POST.get(k, "") for k in ("action", "final_decision", "justification", "answer")}


@login_required
@require_POST
def review_from_page(request: HttpRequest, prediction_id: str) -> HttpResponse:
    """The decision page's confirm/override form (serving.decisions.review_decision)."""
    _require_worker(request)
    form = _typed(request)
    try:
        record, row = find_row(prediction_id)
        action = form["action"]
        final = parse_decision(form["final_decision"], record) if action == ReviewAction.OVERRIDDEN else None
        decisions.review_decision(
            record=record,
            row=row,
            action=action,
            final_decision=final,
            justification=form["justification"],
            reviewer=request.user.get_username(),
            actor=request.user,
        )
    except DomainError as exc:
        messages.error(request, f"Refused: {exc.message}")
        request.session[SESSION_FORM] = {**form, "for": prediction_id}  # what was typed is kept
        return redirect("audit:decision", prediction_id=prediction_id)
    messages.success(request, f"Your review of {prediction_id} was recorded ({action}).")
    if request.POST.get("next") == "queue":
        return redirect("oversight-queue")
    return redirect("audit:decision", prediction_id=prediction_id)


@login_required
@require_POST
def answer_from_page(request: HttpRequest, prediction_id: str, case_id: int) -> HttpResponse:
    """Answer a contestation: the review and the person's answer together (serving.contest)."""
    _require_worker(request)
    case = get_object_or_404(Contestation.objects.select_related("record"), pk=case_id)
    form = _typed(request)
    try:
        action = form["action"]
        final = parse_decision(form["final_decision"], case.record) if action == ReviewAction.OVERRIDDEN else None
        contest.answer_contest(
            case.pk,
            action=action,
            final_decision=final,
            answer=form["answer"],
            justification=form["justification"],
            actor=request.user,
        )
    except DomainError as exc:
        messages.error(request, f"Refused: {exc.message}")
        request.session[SESSION_FORM] = {**form, "for": prediction_id}
        return redirect("audit:decision", prediction_id=prediction_id)
    messages.success(request, f"The contestation of {prediction_id} was answered; the answer is on the receipt.")
    return redirect("audit:decision", prediction_id=prediction_id)


def page_context(request: HttpRequest, record: PredictionLog, row: int, prediction_id: str) -> dict[str, Any]:
    """What the decision page adds for oversight: the open queue item, the contestations, the
    forms (with what a refused submission had typed) and the model's classes to choose from."""
    typed = request.session.pop(SESSION_FORM, None)
    if not isinstance(typed, dict) or typed.get("for") != prediction_id:
        typed = {}
    cases = list(Contestation.objects.filter(record=record, row=row).select_related("answer__review"))
    return {
        "may_oversee": oversight.may_work_queue(request.user),
        "queue_item": oversight.open_item_for(record, row),
        "contestations": [(c, getattr(c, "answer", None)) for c in cases],
        "open_case": next((c for c in cases if getattr(c, "answer", None) is None), None),
        "classes": (record.outputs or {}).get("classes") or [],
        "typed": typed,
    }
