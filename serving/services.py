"""API keys (created and revoked here) and outcomes reported later, each with its audit event."""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from core import audit
from core.evidence import evidence
from core.roles import DATA_SCIENTISTS, RISK_OFFICERS, roles_of
from lifecycle.errors import LifecycleError, NotFound
from serving.errors import ServingError
from serving.models import ApiKey, PredictionLog, PredictionOutcome

KEY_PREFIX = "mgk_"


def hash_key(raw_key: str) -> str:
    # Keys carry 256 bits of randomness, so a fast hash is enough (no brute force possible).
    return hashlib.sha256(raw_key.encode()).hexdigest()


@transaction.atomic
def create_api_key(*, actor: Any, name: str, username: str | None = None) -> tuple[ApiKey, str]:
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
def revoke_api_key(key_id: int, *, actor: Any) -> ApiKey:
    """Revoke a key; it stops authenticating at commit."""
    key = ApiKey.objects.select_for_update().get(pk=key_id)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit.record(audit.API_KEY_REVOKED, actor=actor, target=key, data={"name": key.name, "prefix": key.prefix})
    return key


def may_report_outcome(record: PredictionLog, *, user: Any, api_key: ApiKey | None) -> bool:
    """The API key that received the prediction, or a data scientist or risk officer."""
    if api_key is not None and api_key.user_id is None:
        return record.api_key_id == api_key.pk
    return bool(roles_of(user) & {DATA_SCIENTISTS, RISK_OFFICERS}) or (
        api_key is not None and record.api_key_id == api_key.pk
    )


def outcome_problem(record: PredictionLog, actual: Any) -> str:
    """Why `actual` cannot be the outcome of this record's prediction ("" when it can): one of
    the version's classes for a classifier (same JSON type), a finite number for a regressor."""
    classes = (record.outputs or {}).get("classes")
    if classes is None and record.version is not None and record.version.task == "classification":
        classes = record.version.classes
    if classes is not None:
        if any(type(actual) is type(c) and actual == c for c in classes):
            return ""
        return f"The outcome must be one of the model's classes: {', '.join(json.dumps(c) for c in classes)}."
    if isinstance(actual, bool) or not isinstance(actual, (int, float)) or not math.isfinite(actual):
        return "The outcome of a regression must be a finite number."
    return ""


@transaction.atomic
def record_outcome(*, record: PredictionLog, row: int, actual: Any, reporter: str, actor: Any) -> PredictionOutcome:
    """Store the ground truth of one predicted row, once, with its audit event (the row's content
    hash is chained). The interface checked who may report it (may_report_outcome)."""
    problem = outcome_problem(record, actual)
    if problem:
        raise ServingError(problem, status=400, code="invalid_outcome")
    try:
        with transaction.atomic():
            outcome = PredictionOutcome.objects.create(record=record, row=row, actual=actual, reported_by=reporter)
    except IntegrityError:
        raise ServingError(
            f"The outcome of {record.public_id}.{row} was already reported.", status=409, code="already_reported"
        )
    audit.record(
        audit.OUTCOME_RECORDED,
        actor=actor,
        target=outcome,
        data={"prediction_id": f"{record.public_id}.{row}", "actual": actual, "evidence": evidence(outcome)},
    )
    return outcome
