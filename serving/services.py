"""API keys: created and revoked here, each with its audit event."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from core import audit
from lifecycle.errors import LifecycleError, NotFound
from serving.models import ApiKey

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


def record_outcome(*, record: Any, row: int, actual: Any, reporter: str) -> Any:
    """Store the ground truth of one predicted row, once."""
    from django.db import IntegrityError

    from serving.errors import ServingError
    from serving.models import PredictionOutcome

    try:
        with transaction.atomic():
            return PredictionOutcome.objects.create(record=record, row=row, actual=actual, reported_by=reporter)
    except IntegrityError:
        raise ServingError(
            f"The outcome of {record.public_id}.{row} was already reported.", status=409, code="already_reported"
        )
