"""Contestation (EU AI Act art. 86, GDPR art. 22(3)): the person affected by a decision contests
it through the client application that received it; the case has a response deadline and is
worked in the human-oversight queue, where a case officer answers it with a review (confirmed, or
a corrected decision). The case, its queue item and its answer are evidence, each written with
its audit event; the answer is on the decision's receipt."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from core import audit
from core.actors import Actor, username_of
from core.evidence import evidence
from serving import decisions, oversight
from serving.errors import ServingError
from serving.models import (
    ApiKey,
    Contestation,
    ContestationAnswer,
    Disposition,
    OversightItem,
    OversightReason,
    PredictionLog,
)

RESPONSE_DAYS = 30


def open_case(record: PredictionLog, row: int) -> Contestation | None:
    return Contestation.objects.filter(record=record, row=row, answer__isnull=True).first()


@transaction.atomic
def contest_decision(
    *, record: PredictionLog, row: int, statement: str, caller: str, api_key: ApiKey | None, actor: Actor
) -> Contestation:
    """Open a case on one answered row, from the API key that received it: respond_by is
    RESPONSE_DAYS away; it enters the queue at once. One open case per row (409 otherwise)."""
    if record.pk is None:  # (the serving path's raw INSERT leaves the written instance without a pk)
        record = PredictionLog.objects.select_related("version").get(public_id=record.public_id)
    if api_key is None or record.api_key_id != api_key.pk:
        raise ServingError(
            "Only the API key that received this decision contests it for the person.", status=403, code="forbidden"
        )
    if record.outcome != Disposition.OK or record.version is None:
        raise ServingError("Only an answered prediction can be contested.", status=409, code="not_contestable")
    if row >= record.n_rows:
        raise ServingError("There is no such row in this prediction.", status=404, code="not_found")
    text = (statement or "").strip()
    if not text or "\x00" in text:
        raise ServingError("A contestation needs the person's statement.", status=400, code="invalid_input")
    PredictionLog.objects.select_for_update().filter(pk=record.pk).values_list("pk", flat=True).first()
    if open_case(record, row) is not None:
        raise ServingError(
            "This decision is already contested and not yet answered.", status=409, code="already_contested"
        )
    now = timezone.now()
    case = Contestation.objects.create(
        record=record,
        row=row,
        statement=text[:5000],
        received_at=now,
        respond_by=now + timedelta(days=RESPONSE_DAYS),
        caller=caller[:150],
        api_key=api_key,
    )
    audit.record(
        audit.CONTEST_OPENED,
        actor=actor,
        target=case,
        data={"prediction_id": f"{record.public_id}.{row}", "respond_by": case.respond_by, "evidence": evidence(case)},
    )
    item = OversightItem.objects.create(
        record=record,
        row=row,
        reason=OversightReason.CONTEST,
        detail=f"contested; answer by {case.respond_by:%Y-%m-%d}",
        contestation=case,
        reviews_before=record.reviews.filter(row=row).count(),
        routed_at=now,
        due_at=case.respond_by,
    )
    audit.record(
        audit.DECISION_ROUTED,
        actor=actor,
        target=item,
        data={"prediction_id": f"{record.public_id}.{row}", "reasons": ["contest"], "evidence": evidence(item)},
    )
    return case


@transaction.atomic
def answer_contest(
    contestation_id: int, *, action: str, final_decision: Any, answer: str, justification: str, actor: Actor
) -> ContestationAnswer:
    """A case officer's answer: a review of the decision (confirmed or corrected) and the text the
    person receives, in one transaction. A case is answered once."""
    if not oversight.may_work_queue(actor):
        raise ServingError("Only case officers and risk officers answer contestations.", status=403, code="forbidden")
    case = (
        Contestation.objects.select_for_update(of=("self",)).select_related("record__version").get(pk=contestation_id)
    )
    if ContestationAnswer.objects.filter(contestation=case).exists():
        raise ServingError("This contestation was already answered.", status=409, code="already_answered")
    text = (answer or "").strip()
    if not text or "\x00" in text:
        raise ServingError("Write the answer the person will receive.", status=400, code="invalid_input")
    review = decisions.review_decision(
        record=case.record,
        row=case.row,
        action=action,
        final_decision=final_decision,
        justification=justification or text,
        reviewer=username_of(actor),
        actor=actor,
    )
    reply = ContestationAnswer.objects.create(
        contestation=case, review=review, text=text[:5000], answered_by=username_of(actor), answered_at=timezone.now()
    )
    audit.record(
        audit.CONTEST_ANSWERED,
        actor=actor,
        target=reply,
        data={
            "prediction_id": f"{case.record.public_id}.{case.row}",
            "contestation": case.pk,
            "review_seq": review.seq,
            "final_decision": review.final_decision,
            "in_time": reply.answered_at <= case.respond_by,
            "evidence": evidence(reply),
        },
    )
    return reply


def case_data(case: Contestation) -> dict[str, Any]:
    answer = getattr(case, "answer", None)
    return {
        "id": case.pk,
        "prediction_id": f"{case.record.public_id}.{case.row}",
        "statement": case.statement,
        "received_at": case.received_at,
        "respond_by": case.respond_by,
        "status": "answered" if answer is not None else "open",
        "answer": None
        if answer is None
        else {
            "text": answer.text,
            "by": answer.answered_by,
            "at": answer.answered_at,
            "final_decision": answer.review.final_decision,
            "action": answer.review.action,
        },
    }
