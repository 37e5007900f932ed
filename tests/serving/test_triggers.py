"""One-way facts the database keeps on serving's governed rows (serving.triggers), whoever sends
the SQL, on SQLite as on PostgreSQL: a key is revoked once (revoked_at only from NULL to a value),
a legal hold is released once and never deleted."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from serving.erasure import place_hold, release_hold
from serving.models import ApiKey, LegalHold
from serving.services import create_api_key, revoke_api_key


def refused(match: str):  # noqa: ANN201
    return pytest.raises(IntegrityError, match=match)


def test_a_revoked_key_stays_revoked_and_its_revocation_keeps_its_moment(db: None) -> None:
    key, _ = create_api_key(actor=None, name="client")
    revoke_api_key(key.pk, actor=None)
    revoked_at = ApiKey.objects.get(pk=key.pk).revoked_at
    for value in (None, revoked_at + timedelta(days=1)):
        with refused("a revoked key stays revoked"), transaction.atomic():
            ApiKey.objects.filter(pk=key.pk).update(revoked_at=value)
    with refused("API keys are revoked, never deleted"), transaction.atomic():
        ApiKey.objects.filter(pk=key.pk).delete()
    assert ApiKey.objects.get(pk=key.pk).revoked_at == revoked_at


def test_a_live_key_may_be_revoked_by_sql_as_by_the_service(db: None) -> None:
    key, _ = create_api_key(actor=None, name="client")
    assert ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now()) == 1


def test_a_legal_hold_is_released_once_and_never_deleted(db: None, risk_officer) -> None:
    hold = place_hold(model_name="credit-risk", reason="Litigation.", actor=risk_officer)
    with refused("legal holds are released, never deleted"), transaction.atomic():
        LegalHold.objects.filter(pk=hold.pk).delete()
    release_hold(hold.pk, actor=risk_officer)
    for value in (None, timezone.now() + timedelta(days=1)):
        with refused("released once"), transaction.atomic():
            LegalHold.objects.filter(pk=hold.pk).update(released_at=value)
    with refused("legal holds are released, never deleted"), transaction.atomic():
        LegalHold.objects.filter(pk=hold.pk).delete()
    assert LegalHold.objects.get(pk=hold.pk).released_at is not None
