"""API keys (created and revoked here) and outcomes reported later, each with its audit event."""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from core import audit
from core.actors import Actor
from core.evidence import evidence
from governance import rules
from lifecycle.errors import LifecycleError, NotFound
from lifecycle.models import Task
from serving import personal
from serving.errors import ServingError
from serving.models import ApiKey, PredictionLog, PredictionOutcome

KEY_PREFIX = "mgk_"


def hash_key(raw_key: str) -> str:
    # Keys carry 256 bits of randomness, so a fast hash is enough (no brute force possible).
    return hashlib.sha256(raw_key.encode()).hexdigest()


@transaction.atomic
def create_api_key(*, actor: Actor, name: str, username: str | None = None) -> tuple[ApiKey, str]:
    """Create a key (optionally bound to a user); returns the row and the raw key, shown once."""
    name = (name or "").strip()
    if not name:
        raise LifecycleError("An API key needs a name.", field="name")
    user = None
    if username:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise NotFound(f"There is no user {username!r}.", field="user")
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        name=name,
        prefix=raw[:10],
        key_hash=hash_key(raw),
        user=user,
        created_by_username=getattr(actor, "username", "") or "system",
    )
    audit.record(
        audit.API_KEY_CREATED,
        actor=actor,
        target=key,
        data={"name": name, "prefix": key.prefix, "user": username or None},
    )
    return key, raw


@transaction.atomic
def revoke_api_key(key_id: int, *, actor: Actor) -> ApiKey:
    """Revoke a key; it stops authenticating at commit."""
    key = ApiKey.objects.select_for_update().get(pk=key_id)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit.record(audit.API_KEY_REVOKED, actor=actor, target=key, data={"name": key.name, "prefix": key.prefix})
    return key


def may_report_outcome(record: PredictionLog, *, actor: Actor, api_key: ApiKey | None) -> rules.Rule:
    """The API key that received the prediction, or a risk officer; never the version's creator
    or submitter (governance.rules.can_report_outcome)."""
    received_it = api_key is not None and record.api_key_id == api_key.pk
    return rules.can_report_outcome(record.version, actor, received_it=received_it)


def refusal(rule: rules.Rule) -> ServingError:
    """A rule's no as the serving error: 403 for the role, 409 for segregation of duties."""
    if rule.forbidden:
        return ServingError(rule.reason, status=403, code="forbidden")
    return ServingError(rule.reason, status=409, code=rule.code or "refused")


def outcome_problem(record: PredictionLog, actual: Any) -> str:
    """Why `actual` cannot be the outcome of this record's prediction ("" when it can): one of
    the version's classes for a classifier (same JSON type), a finite number for a regressor."""
    classes = (record.outputs or {}).get("classes")
    if classes is None and record.version is not None and record.version.task == Task.CLASSIFICATION:
        classes = record.version.classes
    if classes is not None:
        if any(type(actual) is type(c) and actual == c for c in classes):
            return ""
        return f"The outcome must be one of the model's classes: {', '.join(json.dumps(c) for c in classes)}."
    if isinstance(actual, bool) or not isinstance(actual, (int, float)) or not math.isfinite(actual):
        return "The outcome of a regression must be a finite number."
    return ""


MAX_SENSITIVE_ATTRIBUTES = 20
MAX_SENSITIVE_CHARS = 200


def sensitive_problem(sensitive: Any) -> str:
    """Why `sensitive` cannot be stored with an outcome ("" when it can): an object of at most
    20 attributes whose values are short texts, numbers, booleans or null (values are never
    repeated in the message: they may be personal)."""
    if sensitive is None:
        return ""
    if not isinstance(sensitive, dict):
        return '"sensitive" must be an object of attribute names to values.'
    if len(sensitive) > MAX_SENSITIVE_ATTRIBUTES:
        return f'"sensitive" has more than {MAX_SENSITIVE_ATTRIBUTES} attributes.'
    for name, value in sensitive.items():
        if not name or len(name) > MAX_SENSITIVE_CHARS or "\x00" in name:
            return '"sensitive" has an attribute name that is empty, too long or holds NUL.'
        if isinstance(value, float) and not math.isfinite(value):
            return f'"sensitive" attribute {name!r} is not a finite number.'
        if isinstance(value, str) and (len(value) > MAX_SENSITIVE_CHARS or "\x00" in value):
            return f'"sensitive" attribute {name!r} is longer than {MAX_SENSITIVE_CHARS} characters or holds NUL.'
        if value is not None and not isinstance(value, (str, int, float, bool)):
            return f'"sensitive" attribute {name!r} must be a text, a number, a boolean or null.'
    return ""


@transaction.atomic
def record_outcome(
    *,
    record: PredictionLog,
    row: int,
    actual: Any,
    reporter: str,
    actor: Actor,
    api_key: ApiKey | None = None,
    sensitive: Any = None,
    corrects: bool = False,
    justification: str = "",
) -> PredictionOutcome:
    """Store the ground truth of one predicted row (with sensitive attributes that are not model
    inputs, for live fairness), once, with its audit event (the row's content hash is chained).
    `corrects` adds an audited correction row instead (the earlier rows are kept); only the key
    that received the prediction or a risk officer reports, never the version's own people."""
    rule = may_report_outcome(record, actor=actor, api_key=api_key)
    if not rule:
        raise refusal(rule)
    problem = outcome_problem(record, actual) or sensitive_problem(sensitive)
    if problem:
        raise ServingError(problem, status=400, code="invalid_outcome")
    if corrects:
        return _correct_outcome(record, row, actual, reporter, actor, sensitive, justification)
    try:
        with transaction.atomic():
            outcome = PredictionOutcome.objects.create(
                record=record,
                row=row,
                actual=actual,
                reported_by=reporter,
                sensitive=personal.seal_attributes(record, row, sensitive),
            )
    except IntegrityError:
        raise ServingError(
            f'The outcome of {record.public_id}.{row} was already reported; send "corrects": true with a '
            "justification to correct it.",
            status=409,
            code="already_reported",
        )
    audit.record(
        audit.OUTCOME_RECORDED,
        actor=actor,
        target=outcome,
        data={"prediction_id": f"{record.public_id}.{row}", "actual": actual, "evidence": evidence(outcome)},
    )
    return outcome


def _correct_outcome(
    record: PredictionLog, row: int, actual: Any, reporter: str, actor: Actor, sensitive: Any, justification: str
) -> PredictionOutcome:
    text = (justification or "").strip()
    if not text or "\x00" in text:
        raise ServingError(
            "A correction needs a written justification (without NUL).",
            status=400,
            code="invalid_input",
            details={"justification": ["A correction needs a written justification."]},
        )
    # corrections of one row are numbered under a lock on its record
    PredictionLog.objects.select_for_update().filter(pk=record.pk).values_list("pk", flat=True).first()
    previous = PredictionOutcome.objects.filter(record=record, row=row).order_by("-seq").first()
    if previous is None:
        raise ServingError(
            f"The outcome of {record.public_id}.{row} was never reported: there is nothing to correct.",
            status=409,
            code="nothing_to_correct",
        )
    outcome = PredictionOutcome.objects.create(
        record=record,
        row=row,
        seq=previous.seq + 1,
        actual=actual,
        reported_by=reporter,
        justification=text[:5000],
        sensitive=personal.seal_attributes(record, row, sensitive) if sensitive is not None else previous.sensitive,
    )
    audit.record(
        audit.OUTCOME_CORRECTED,
        actor=actor,
        target=outcome,
        data={
            "prediction_id": f"{record.public_id}.{row}",
            "seq": outcome.seq,
            "before": previous.actual,
            "after": actual,
            "justification": text[:5000],
            "evidence": evidence(outcome),
        },
    )
    return outcome


@dataclass(frozen=True)
class OutcomeItem:
    prediction_id: str
    record: PredictionLog | None
    row: int | None
    actual: Any
    sensitive: Any


@transaction.atomic
def record_outcomes(
    items: list[OutcomeItem], *, api_key: ApiKey | None, reporter: str, actor: Actor
) -> list[PredictionOutcome]:
    """Store many outcomes at once, all or none: every problem is named by its position, and
    nothing is stored unless every item is valid. One audit event carries every row's evidence."""
    problems: list[dict[str, Any]] = []
    seen: set[tuple[int, int]] = set()
    for index, item in enumerate(items):
        problem = ""
        if item.record is None or item.row is None:
            problem = f"There is no prediction {item.prediction_id}."
        elif not (rule := may_report_outcome(item.record, actor=actor, api_key=api_key)):
            problem = rule.reason
        elif (item.record.pk, item.row) in seen:
            problem = "This prediction appears twice in the request."
        else:
            problem = outcome_problem(item.record, item.actual) or sensitive_problem(item.sensitive)
        if not problem and PredictionOutcome.objects.filter(record=item.record, row=item.row or 0).exists():
            problem = "Its outcome was already reported."
        if problem:
            problems.append({"index": index, "prediction_id": item.prediction_id[:100], "error": problem})
        elif item.record is not None and item.row is not None:
            seen.add((item.record.pk, item.row))
    if problems:
        raise ServingError(
            f"{len(problems)} of {len(items)} outcomes cannot be stored; none was stored.",
            status=400,
            code="invalid_outcome",
            details={"outcomes": problems[:100]},
        )
    try:
        with transaction.atomic():
            outcomes = PredictionOutcome.objects.bulk_create(
                [
                    PredictionOutcome(
                        record=item.record,
                        row=item.row or 0,  # (every item was checked to name a row)
                        actual=item.actual,
                        reported_by=reporter,
                        sensitive=personal.seal_attributes(item.record, item.row or 0, item.sensitive),
                    )
                    for item in items
                ]
            )
    except IntegrityError:  # reported concurrently by someone else
        raise ServingError(
            "Some of these outcomes were reported meanwhile; none was stored.", status=409, code="already_reported"
        )
    stored = list(PredictionOutcome.objects.filter(pk__in=[o.pk for o in outcomes]).order_by("pk"))
    if len(stored) != len(items):  # backends that do not return ids from bulk_create
        keys = [(i.record.pk, i.row) for i in items if i.record is not None]
        stored = [
            o
            for o in PredictionOutcome.objects.filter(record_id__in={k for k, _ in keys})
            if (o.record_id, o.row) in keys
        ]
    audit.record(
        audit.OUTCOMES_RECORDED,
        actor=actor,
        target=None,
        data={"outcomes": len(stored), "reported_by": reporter, "evidence": evidence(*stored)},
    )
    return stored
