"""Erasure, legal hold and retention of the prediction log's personal data (serving.personal):
destroying a subject's data keys makes their values read "[erased]" everywhere while every seal
and inclusion proof still verifies."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from core import audit
from core.actors import Actor, person
from core.evidence import evidence
from core.roles import RISK_OFFICERS, has_role
from serving.errors import ServingError
from serving.models import LegalHold, PredictionKey, SubjectKey
from serving.subject_keys import business_key_lookups, forget_written_keys, month_of, subject_hashes


# --- erasure, legal hold, retention -------------------------------------------------------
def holds(model_name: str) -> bool:
    return LegalHold.objects.filter(model_name=model_name, released_at__isnull=True).exists()


@transaction.atomic
def erase_subject(*, model_name: str, subject: Any, actor: Actor, reason: str = "") -> int:
    """Destroy every data key of the subject in the model's log (all months): their values read
    "[erased]" from now on. Refused with 409 while a legal hold is in force. The audit event
    holds a salted hash of the subject, never the value. Risk officers only: the API and the
    page ask this same rule."""
    if not has_role(actor, RISK_OFFICERS):
        raise ServingError("Only risk officers erase a data subject's personal data.", status=403, code="forbidden")
    if holds(model_name):
        raise ServingError(
            f"{model_name} is under a legal hold: no personal data of it is erased until a risk officer releases it.",
            status=409,
            code="legal_hold",
        )
    keys = SubjectKey.objects.select_for_update().filter(
        model_name=model_name, subject_hash__in=subject_hashes(model_name, subject), erased_at__isnull=True
    )
    months = sorted({k.month.isoformat() for k in keys})
    ids = list(keys.values_list("pk", flat=True))
    erased = keys.update(wrapped=None, erased_at=timezone.now(), erased_because="request")
    # the lookup index forgets the subject's business key too: a lookup finds nothing, while
    # the records, their seals and proofs stay (the key in a record is sealed ciphertext)
    unindexed, _ = PredictionKey.objects.filter(
        record__model_name=model_name, key__in=[str(subject), *business_key_lookups(subject)]
    ).delete()
    salt = secrets.token_hex(16)
    audit.record(
        audit.SUBJECT_ERASED,
        actor=actor,
        target=None,
        data={
            "model": model_name,
            "subject_salt": salt,
            "subject_sha256": hashlib.sha256(f"{salt}{subject}".encode()).hexdigest(),
            "keys_erased": erased,
            "reason": reason[:500],  # the request or ticket the officer named (serving.erasure_preview)
            "index_rows_removed": unindexed,
            "months": months,
            # destroyed key ids are evidence: a key put back is named by verification
            "evidence": evidence(*SubjectKey.objects.filter(pk__in=ids).order_by("pk")),
        },
    )
    # now, and again once committed: a key this process read meanwhile from the rows not yet
    # erased is not kept either
    forget_written_keys()
    transaction.on_commit(forget_written_keys)
    return erased


@transaction.atomic
def erase_expired(*, now: datetime | None = None, retention_days: int) -> dict[str, int]:
    """Retention: destroy the keys of months that ended more than `retention_days` ago, except
    for models under a legal hold. One audit event per run (when anything was erased)."""
    now = now or timezone.now()
    from datetime import timedelta

    cutoff = month_of(now - timedelta(days=retention_days))  # months before this one have ended long enough
    held = set(LegalHold.objects.filter(released_at__isnull=True).values_list("model_name", flat=True))
    due = (
        SubjectKey.objects.select_for_update()
        .filter(erased_at__isnull=True, month__lt=cutoff)
        .exclude(model_name__in=held)
    )
    counts: dict[str, int] = {}
    ids = list(due.values_list("pk", flat=True))
    for model_name in sorted(set(due.values_list("model_name", flat=True))):
        counts[model_name] = due.filter(model_name=model_name).update(
            wrapped=None, erased_at=now, erased_because="retention"
        )
    if counts:
        erased = SubjectKey.objects.filter(pk__in=ids).order_by("pk")
        audit.record(
            audit.RETENTION_ERASED,
            actor=None,
            target=None,
            data={
                "retention_days": retention_days,
                "before_month": cutoff.isoformat(),
                "keys_erased": counts,
                "evidence": evidence(*erased),
            },
        )
        forget_written_keys()
        transaction.on_commit(forget_written_keys)
    return counts


@transaction.atomic
def place_hold(*, model_name: str, reason: str, actor: Actor) -> LegalHold:
    text = (reason or "").strip()
    if not text:
        raise ServingError("A legal hold needs a reason.", status=400, code="invalid_hold")
    hold = LegalHold.objects.create(model_name=model_name, reason=text, placed_by=person(actor))
    audit.record(audit.LEGAL_HOLD_PLACED, actor=actor, target=hold, data={"model": model_name, "reason": text})
    return hold


@transaction.atomic
def release_hold(hold_id: int, *, actor: Actor) -> LegalHold:
    hold = LegalHold.objects.select_for_update().get(pk=hold_id)
    if hold.released_at is None:
        hold.released_at = timezone.now()
        hold.released_by_username = getattr(actor, "username", "") or "system"
        hold.save(update_fields=["released_at", "released_by_username"])
        audit.record(audit.LEGAL_HOLD_RELEASED, actor=actor, target=hold, data={"model": hold.model_name})
    return hold
