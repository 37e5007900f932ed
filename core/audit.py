"""The append-only, hash-chained audit trail: record() appends, verify_chain() proves.

Each event's hash is SHA-256 over the previous hash and a canonical JSON of the event's own
fields, so editing, deleting or reordering any event breaks every hash after it. Each event also
carries an HMAC-SHA256 of its hash under AUDIT_MAC_KEY, a key the database never sees: someone
with SQL alone can compute a correct hash, never a MAC, so an event they append (or a chain they
rewrite) does not verify. On PostgreSQL events are appended through one database function that
takes the head's lock and refuses an event whose seq and prev_hash do not follow it (the runtime
role may not INSERT into the trail itself), and the insert's trigger moves the head
(core/migrations/0003 and 0004, docs/ledger.md)."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, models, transaction
from django.utils import timezone

from core import caches, ledger
from core.actors import Actor
from core.canonical import canonical_json
from core.evidence import evidence, row_key
from core.keyfiles import read_or_create
from core.models import AuditChainHead, AuditEvent

GENESIS_HASH = "0" * 64

# Action codes (dotted, kept as constants so a typo is an import error, not a lost event).
VERSION_CREATED = "lifecycle.version.created"
VERSION_UPDATED = "lifecycle.version.updated"
VERSION_SUBMITTED = "lifecycle.version.submitted"
MODEL_REGISTERED = "lifecycle.model.registered"
DATASET_CREATED = "lifecycle.dataset.created"
DATASET_ENCRYPTED = "lifecycle.dataset.encrypted"
DATASET_KEY_DESTROYED = "governance.dataset_key.destroyed"
ARTIFACT_TAMPERED = "lifecycle.artifact.tampered"
API_KEY_CREATED = "serving.api_key.created"
API_KEY_REVOKED = "serving.api_key.revoked"
ACTION_REFUSED = "governance.action.refused"
CHECK_FINISHED = "governance.check.finished"
CHECKS_REQUEUED = "governance.checks.requeued"
VERSION_IN_REVIEW = "governance.version.in_review"
VERSION_APPROVAL_RECORDED = "governance.version.approval_recorded"
VERSION_APPROVED = "governance.version.approved"
VERSION_REJECTED = "governance.version.rejected"
VERSION_CHANGES_REQUESTED = "governance.version.changes_requested"
VERSION_DEPLOYED = "governance.version.deployed"
MODEL_ROLLED_BACK = "governance.model.rolled_back"
VERSION_RETIRED = "governance.version.retired"
VERSION_SUSPENDED = "governance.version.suspended"
VERSION_REINSTATEMENT_RECORDED = "governance.version.reinstatement_recorded"
VERSION_REINSTATED = "governance.version.reinstated"
RISK_TIER_SET = "governance.risk_tier.set"
FAIRNESS_REQUIREMENTS_SET = "governance.fairness_requirements.set"
POLICY_CHANGED = "governance.policy.changed"
POLICY_CREATED = "governance.policy.created"
OUTCOME_RECORDED = "serving.outcome.recorded"
OUTCOMES_RECORDED = "serving.outcomes.recorded"
OUTCOME_CORRECTED = "serving.outcome.corrected"
BATCH_ACCEPTED = "serving.batch.accepted"
BATCH_STARTED = "serving.batch.started"
BATCH_FINISHED = "serving.batch.finished"
BATCH_RESULT_EXPIRED = "serving.batch.result_expired"
BATCH_STOPPED = "serving.batch.stopped"
SUBJECT_ERASED = "serving.subject.erased"
RETENTION_ERASED = "serving.retention.erased"
LEGAL_HOLD_PLACED = "serving.legal_hold.placed"
LEGAL_HOLD_RELEASED = "serving.legal_hold.released"
ROLE_GRANTED = "core.role.granted"
ROLE_REVOKED = "core.role.revoked"
LOGIN_LOCKED_OUT = "core.login.locked_out"
EVIDENCE_BASELINED = "compliance.evidence.baselined"
VERSION_RECERTIFICATION_RECORDED = "governance.version.recertification_recorded"
VERSION_RECERTIFIED = "governance.version.recertified"
VERSION_APPROVAL_EXPIRED = "governance.version.approval_expired"
VERSION_EXPIRY_REMINDED = "governance.version.expiry_reminded"
FINDING_OPENED = "governance.finding.opened"
VALIDATION_RECORDED = "governance.validation.recorded"
OVERLAY_RECORDED = "governance.overlay.recorded"
OVERLAY_WITHDRAWN = "governance.overlay.withdrawn"
OVERLAY_EXPIRED = "governance.overlay.expired"
RETRAINING_REQUESTED = "governance.retraining.requested"
RETRAINING_ANSWERED = "governance.retraining.answered"
KPI_DEFINED = "monitoring.kpi.defined"
FINDING_UPDATED = "governance.finding.updated"
FINDING_COMMENTED = "governance.finding.commented"
FINDING_CLOSED = "governance.finding.closed"
SHADOW_STARTED = "governance.shadow.started"
SHADOW_ENDED = "governance.shadow.ended"
SHADOW_COMPARED = "governance.shadow.compared"
MONITORING_WINDOW_COMPUTED = "monitoring.window.computed"
MONITORING_ALERT_RAISED = "monitoring.alert.raised"
MODEL_FALLBACK_SET = "governance.model.fallback_set"
MODEL_STOPPED = "governance.model.stopped"
MODEL_RESUMED = "governance.model.resumed"
INCIDENT_REGISTERED = "compliance.incident.registered"
INCIDENT_REMINDED = "compliance.incident.reminded"
CONTROL_ATTESTED = "compliance.control.attested"


# Called with each new event inside record()'s transaction (integrations wakes its webhook outbox
# on commit this way). A listener must not raise and must not write: the outbox itself is read
# from the chain, so a listener that never runs delays a webhook, it never loses one.
_listeners: list[Callable[[AuditEvent], None]] = []


def add_listener(listener: Callable[[AuditEvent], None]) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def event_payload(event: AuditEvent) -> dict[str, Any]:
    """The fields an event's hash covers."""
    return {
        "seq": event.seq,
        "created_at": event.created_at.isoformat(),
        "actor_id": event.actor_id,
        "actor_username": event.actor_username,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "target_repr": event.target_repr,
        "data": event.data,
    }


def compute_hash(prev_hash: str, payload: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(payload)).encode()).hexdigest()


def _mac_key() -> bytes:
    """AUDIT_MAC_KEY; in development only, the key kept in AUDIT_MAC_KEY_FILE (made on first use)."""
    if settings.AUDIT_MAC_KEY:
        return settings.AUDIT_MAC_KEY.encode()
    if not settings.DEBUG:
        raise ImproperlyConfigured("AUDIT_MAC_KEY must be set when DEBUG=False (the audit trail's MAC key).")
    return _development_key(str(settings.AUDIT_MAC_KEY_FILE))


@functools.cache
def _development_key(path: str) -> bytes:
    return read_or_create(Path(path), lambda: secrets.token_hex(32), what="AUDIT_MAC_KEY").encode()


caches.register("core.audit.development_mac_key", _development_key.cache_clear)


def compute_mac(event_hash: str, key: bytes | None = None) -> str:
    """HMAC-SHA256 of an event's hash (hex text) under the audit MAC key. The hash covers the
    event's fields, its seq and the previous hash, so the MAC binds the event to its place."""
    return hmac.new(key if key is not None else _mac_key(), event_hash.encode(), hashlib.sha256).hexdigest()


def _actor_fields(actor: Actor) -> tuple[int | None, str]:
    if actor is None:
        return None, "system"
    if isinstance(actor, models.Model):
        return actor.pk, str(getattr(actor, "username", actor.pk))
    # An API key bound to no user acts as itself.
    return None, str(getattr(actor, "username", actor))


def _with_target_evidence(data: dict[str, Any], target: models.Model | None) -> dict[str, Any]:
    """Every event about a proven row (core.ledger: evidence or governed) carries the row's
    content hash as it is now, so verification can prove the row both ways."""
    if target is None or target.pk is None:
        return data
    entry = ledger.entry_for(target)
    if entry is None or not entry.proven:
        return data
    if entry.which is not None and not entry.model._default_manager.filter(entry.rows(), pk=target.pk).exists():
        return data  # not evidence yet (a queued check, a live key)
    items = data.get("evidence")
    items = list(items) if isinstance(items, list) else []
    if any(isinstance(i, dict) and i.get("row") == row_key(target) for i in items):
        return data
    return {**data, "evidence": items + evidence(target)}


# PostgreSQL: the functions the runtime role appends through (core/migrations/0004; it is granted
# EXECUTE on these and no INSERT on the trail: compliance.db_roles).
APPEND_FUNCTIONS = ("core_audit_head()", "core_audit_append(jsonb)")


def _lock_head() -> tuple[int, str]:
    """Lock the chain head (serialising writers, even on an empty chain) and return it."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT head_seq, head_hash FROM core_audit_head()")
            seq, head_hash = cursor.fetchone()
        return int(seq), str(head_hash)
    head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
    return head.seq, head.hash


def _append(event: AuditEvent) -> None:
    """Write the hashed, MACed event and move the head to it. On PostgreSQL through
    core_audit_append, which checks seq and prev_hash under the head's lock (its trigger moves
    the head); elsewhere the ORM writes both rows."""
    if connection.vendor != "postgresql":
        event.save(force_insert=True)
        AuditChainHead.objects.filter(pk=1).update(seq=event.seq, hash=event.hash)
        return
    row = {**event_payload(event), "prev_hash": event.prev_hash, "hash": event.hash, "mac": event.mac}
    with connection.cursor() as cursor:
        cursor.execute("SELECT core_audit_append(%s::jsonb)", [canonical_json(row)])
        event.pk = cursor.fetchone()[0]
    event._state.adding, event._state.db = False, connection.alias


@transaction.atomic
def record(
    action: str,
    *,
    actor: Actor,
    target: models.Model | None = None,
    data: dict[str, Any] | None = None,
    prove_target: bool = True,
) -> AuditEvent:
    """Append one event. Must run inside the transaction of the change it records. The event
    carries the target's content hash when its table is proven (core.ledger), unless
    `prove_target` is False (a change found, not made, must not re-baseline the row)."""
    head_seq, head_hash = _lock_head()
    actor_id, username = _actor_fields(actor)
    data = _with_target_evidence(data or {}, target) if prove_target else (data or {})
    event = AuditEvent(
        seq=head_seq + 1,
        created_at=timezone.now(),
        actor_id=actor_id,
        actor_username=username,
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:300] if target is not None else "",
        # Round-trip through canonical JSON so the stored data is exactly what was hashed.
        data=json.loads(canonical_json(data)),
        prev_hash=head_hash,
    )
    event.hash = compute_hash(event.prev_hash, event_payload(event))
    event.mac = compute_mac(event.hash)
    _append(event)
    for listener in _listeners:
        listener(event)
    return event


@dataclass(frozen=True)
class ChainVerification:
    ok: bool
    events_checked: int
    message: str
    first_broken_seq: int | None = None


def verify_chain() -> ChainVerification:
    """Recompute every hash and MAC in order; name the first event that does not match, then
    check that the head row names the last event."""
    key = _mac_key()
    prev_hash = GENESIS_HASH
    expected_seq = 1
    count = 0
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=2000):
        count += 1
        if event.seq != expected_seq:
            return ChainVerification(
                False, count, f"event #{expected_seq} is missing (found #{event.seq} next)", expected_seq
            )
        if event.prev_hash != prev_hash:
            return ChainVerification(
                False, count, f"event #{event.seq} does not follow event #{event.seq - 1}", event.seq
            )
        if compute_hash(event.prev_hash, event_payload(event)) != event.hash:
            return ChainVerification(False, count, f"event #{event.seq} ({event.action}) was altered", event.seq)
        if not hmac.compare_digest(compute_mac(event.hash, key), event.mac):
            return ChainVerification(
                False,
                count,
                f"event #{event.seq} ({event.action}) does not carry a valid MAC: it was not written by the "
                "application (or AUDIT_MAC_KEY is not the key the trail was written with)",
                event.seq,
            )
        prev_hash = event.hash
        expected_seq += 1
    last = expected_seq - 1
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is None:
        if count:
            return ChainVerification(False, count, f"the chain ends at #{last} but it has no head row", last)
    elif head.seq != last:
        return ChainVerification(False, count, f"the chain ends at #{last} but its head says #{head.seq}", expected_seq)
    elif head.hash != prev_hash:
        message = f"the chain head names event #{head.seq} with hash {head.hash}, the event has {prev_hash}"
        return ChainVerification(False, count, message, last)
    return ChainVerification(True, count, f"{count} events verified, chain intact")


# --- codes recorded by the layers above (every audit code is named here, once) ---
REPORT_JOB_STARTED = "compliance.job.started"
REPORT_JOB_FINISHED = "compliance.job.finished"
REPORT_GENERATED = "governance.report.generated"
AUDIT_VERIFIED = "governance.audit.verified"
EXPORT_DOWNLOADED = "governance.export.downloaded"
FINDING_CLOSURE_PROPOSED = "governance.finding.closure_proposed"
AUDITOR_WRITE_REFUSED = "governance.auditor.write_refused"
WEBHOOK_ENDPOINT_CREATED = "integrations.webhook.endpoint_created"
WEBHOOK_ENDPOINT_CHANGED = "integrations.webhook.endpoint_changed"
WEBHOOK_SECRET_ROTATED = "integrations.webhook.secret_rotated"
WEBHOOK_ENDPOINT_DISABLED = "integrations.webhook.endpoint_disabled"
MLFLOW_IMPORTED = "integrations.mlflow.imported"
CONTEST_OPENED = "serving.contest.opened"
CONTEST_ANSWERED = "serving.contest.answered"
EXPLANATION_RECORDED = "serving.explanation.recorded"
DECISION_REVIEWED = "serving.decision.reviewed"
OVERSIGHT_RULE_SET = "serving.oversight.rule_set"
DECISION_ROUTED = "serving.oversight.routed"
PREDICTIONS_SEALED = "serving.predictions.sealed"
LOG_PARTITION_RETIRED = "serving.log_partition.retired"
