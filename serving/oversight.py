"""The human-oversight queue (docs/design.md, "Human oversight and contestation"; EU AI Act art. 14):
a risk officer's rule per model routes its decisions to the queue (adverse decisions, scores
within a band of the threshold, named segments); case officers confirm or override them on the
decision's page (serving.decisions.review_decision). A routed item is evidence, written once with
its audit event; it is resolved by the first review after it, never by changing it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, F, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from core import audit
from core.actors import Actor, username_of
from core.evidence import evidence
from core.roles import CASE_OFFICERS, RISK_OFFICERS, has_role, roles_of
from lifecycle.models import RegisteredModel
from serving import personal
from serving.errors import ServingError
from serving.models import (
    ContestationAnswer,
    DecisionReview,
    Disposition,
    OversightCursor,
    OversightItem,
    OversightReason,
    OversightRule,
    PredictionLog,
)

THRESHOLD = 0.5  # a binary classifier's decision threshold on the favourable class's probability
# records younger than this are left to the next sweep: a concurrent INSERT with a lower id may
# not have committed yet, and the cursor must never pass it
SETTLE_SECONDS = 2
SWEEP_BATCH = 2000


def may_work_queue(actor: Actor) -> bool:
    """Case officers work the queue; risk officers may too (they set its rules)."""
    return bool(roles_of(actor) & {CASE_OFFICERS, RISK_OFFICERS})


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


@transaction.atomic
def set_oversight_rule(
    *,
    model_name: str,
    actor: Actor,
    justification: str,
    adverse: bool = True,
    band: float | None = None,
    segments: dict[str, list[Any]] | None = None,
    due_hours: int = 72,
    active: bool = True,
) -> OversightRule:
    """Create or change the model's routing rule, by a risk officer, with a justification."""
    if not has_role(actor, RISK_OFFICERS):
        raise ServingError("Only risk officers set oversight rules.", status=403, code="forbidden")
    if not RegisteredModel.objects.filter(name=model_name).exists():
        raise ServingError("There is no model of that name.", status=404, code="not_found")
    text = (justification or "").strip()
    if not text:
        raise ServingError("An oversight rule needs a written justification.", status=400, code="invalid_input")
    if _holds_nul(text) or _holds_nul(segments):  # (PostgreSQL text and jsonb cannot hold it)
        raise ServingError("The rule holds a NUL character; remove it.", status=400, code="invalid_input")
    if band is not None and not 0 < band <= 0.5:
        raise ServingError(
            "The band is a distance from 0.5, above 0 and at most 0.5.", status=400, code="invalid_input"
        )
    if segments is not None and not all(isinstance(v, list) for v in segments.values()):
        raise ServingError('Segments are {"feature": ["value", ...]}.', status=400, code="invalid_input")
    rule, _ = OversightRule.objects.select_for_update().get_or_create(
        model_name=model_name,
        defaults={"changed_by_username": username_of(actor), "justification": text},
    )
    rule.adverse, rule.band, rule.segments = adverse, band, segments or {}
    rule.due_hours, rule.active = due_hours, active
    rule.changed_by_username, rule.justification = username_of(actor), text
    rule.save()
    audit.record(
        audit.OVERSIGHT_RULE_SET,
        actor=actor,
        target=rule,
        data={"model": model_name, "adverse": adverse, "band": band, "segments": rule.segments, "active": active},
    )
    return rule


def _same(a: Any, b: Any) -> bool:
    return bool(a == b) or str(a) == str(b)


def reasons_for(rule: OversightRule, *, decision: Any, favourable: Any, score: float | None, inputs: Any) -> list[str]:
    """Why the rule routes one decision (empty: it does not). Pure: no database."""
    found = []
    if rule.adverse and favourable is not None and not _same(decision, favourable):
        found.append(f"{OversightReason.ADVERSE}:decision {decision}, favourable {favourable}")
    if rule.band is not None and score is not None and abs(score - THRESHOLD) <= rule.band:
        found.append(f"{OversightReason.NEAR_THRESHOLD}:score {score:.3f} within {rule.band:g} of {THRESHOLD:g}")
    for feature, values in (rule.segments or {}).items():
        value = inputs.get(feature) if isinstance(inputs, dict) else None
        if value is not None and any(_same(value, v) for v in values):
            found.append(f"{OversightReason.SEGMENT}:{feature} = {value}")
    return found


def _favourable_score(record: PredictionLog, row: int, favourable: Any) -> float | None:
    outputs = record.outputs
    probabilities, classes = outputs.get("probabilities"), outputs.get("classes") or []
    if not probabilities or len(classes) != 2 or favourable is None:
        return None
    for i, c in enumerate(classes):
        if _same(c, favourable):
            return float(probabilities[row][i])
    return None


@transaction.atomic
def route_record(record: PredictionLog, rule: OversightRule, *, now: datetime | None = None) -> list[OversightItem]:
    """Route the record's rows the rule names (once per row), each with its audit event."""
    version = record.version
    if version is None or record.outcome != Disposition.OK:
        return []
    now = now or timezone.now()
    inputs, _ = personal.reveal_record(record)
    items = []
    for row, decision in enumerate(record.outputs.get("predictions") or []):
        found = reasons_for(
            rule,
            decision=decision,
            favourable=version.favourable,
            score=_favourable_score(record, row, version.favourable),
            inputs=inputs[row] if row < len(inputs) else {},
        )
        if not found or OversightItem.objects.filter(record=record, row=row).exists():
            continue  # routed once (a contestation routes its row itself)
        if DecisionReview.objects.filter(record=record, row=row).exists():
            continue  # a person already reviewed it
        reason, _, _ = found[0].partition(":")
        item = OversightItem.objects.create(
            record=record,
            row=row,
            reason=reason,
            detail="; ".join(f.partition(":")[2] for f in found)[:300],
            reviews_before=0,
            routed_at=now,
            due_at=now + timedelta(hours=rule.due_hours),
        )
        audit.record(
            audit.DECISION_ROUTED,
            actor=None,
            target=item,
            data={"prediction_id": f"{record.public_id}.{row}", "reasons": found, "evidence": evidence(item)},
        )
        items.append(item)
    return items


def route_new_decisions(*, now: datetime | None = None) -> int:
    """The sweep (beat, `manage.py route_decisions`, the demo): every active rule's model's
    records since the cursor, older than SETTLE_SECONDS. Returns the items routed."""
    now = now or timezone.now()
    routed = 0
    for rule in OversightRule.objects.filter(active=True):
        with transaction.atomic():
            cursor, _ = OversightCursor.objects.select_for_update().get_or_create(model_name=rule.model_name)
            records = list(
                PredictionLog.objects.filter(
                    model_name=rule.model_name,
                    pk__gt=cursor.last_record,
                    created_at__lt=now - timedelta(seconds=SETTLE_SECONDS),
                )
                .select_related("version__registered_model")
                .order_by("pk")[:SWEEP_BATCH]
            )
            for record in records:
                routed += len(route_record(record, rule, now=now))
            if records:
                cursor.last_record = records[-1].pk
                cursor.save(update_fields=["last_record"])
    return routed


@dataclass(frozen=True)
class QueueEntry:
    item: OversightItem
    prediction_id: str
    decision: Any
    overdue: bool
    business_key: str


def open_items() -> Any:
    """Items no one has worked yet, oldest first: a routed row without a review since it was
    routed, a contestation without an answer."""
    answered = ContestationAnswer.objects.values("contestation_id")
    # (counted in a subquery: the partitioned log's key is (id, created_at), so PostgreSQL would
    # not take a GROUP BY on the record's id for its other columns)
    reviews = (
        DecisionReview.objects.filter(record_id=OuterRef("record_id"), row=OuterRef("row"))
        .order_by()
        .values("record_id")
        .annotate(n=Count("pk"))
        .values("n")[:1]
    )
    reviewed = Coalesce(Subquery(reviews, output_field=IntegerField()), 0)
    return (
        OversightItem.objects.select_related("record", "contestation")
        .annotate(reviews_now=reviewed)
        .filter(
            Q(contestation__isnull=True, reviews_now__lte=F("reviews_before"))
            | Q(contestation__isnull=False) & ~Q(contestation_id__in=answered)
        )
        .order_by("routed_at", "pk")
    )


def queue(now: datetime | None = None) -> list[QueueEntry]:
    now = now or timezone.now()
    return [
        QueueEntry(
            item=i,
            prediction_id=f"{i.record.public_id}.{i.row}",
            decision=(i.record.outputs.get("predictions") or [None])[i.row],
            overdue=i.due_at < now,
            business_key=_business_key(i.record, i.row),
        )
        for i in open_items()[:500]
    ]


def _business_key(record: PredictionLog, row: int) -> str:
    """The row's business key as case officers read it (a personal one decrypted, or "[erased]")."""
    if not record.business_keys_json:
        return ""
    _, keys = personal.reveal_record(record)
    return str(keys[row]) if row < len(keys) else ""


def open_item_for(record: PredictionLog, row: int) -> OversightItem | None:
    return open_items().filter(record=record, row=row).first()
