"""Which audit events become webhooks, under which event type, and what their payload says.

The one table below maps audit action codes to Standard Webhooks event types. The payload is
thin (identifiers, the actor, the audit event's own data without evidence hashes): a receiver
that needs more asks the API, where access is checked and audited."""

from __future__ import annotations

from typing import Any

from core import audit
from core.canonical import canonical_json
from core.models import AuditEvent

# audit action code -> webhook event type (and a human label for the admin)
EVENT_TYPES: dict[str, tuple[str, str]] = {
    audit.VERSION_SUBMITTED: ("model_version.submitted", "Version submitted for review"),
    audit.VERSION_IN_REVIEW: ("model_version.checks_finished", "All checks finished (version in review)"),
    audit.VERSION_APPROVED: ("model_version.approved", "Version approved"),
    audit.VERSION_REJECTED: ("model_version.rejected", "Version rejected"),
    audit.VERSION_DEPLOYED: ("model_version.deployed", "Version deployed to production"),
    audit.MODEL_ROLLED_BACK: ("model_version.rolled_back", "Model rolled back"),
    audit.VERSION_SUSPENDED: ("model_version.suspended", "Version suspended"),
    audit.VERSION_RETIRED: ("model_version.retired", "Version retired"),
    audit.VERSION_RECERTIFIED: ("model_version.recertified", "Version recertified"),
    audit.MONITORING_ALERT_RAISED: ("monitoring.alert", "Monitoring alert raised"),
    audit.FINDING_OPENED: ("finding.opened", "Finding opened"),
    audit.FINDING_CLOSED: ("finding.closed", "Finding closed"),
    audit.BATCH_FINISHED: ("batch.finished", "Batch job finished"),
}
ALL_EVENT_TYPES: list[str] = [event_type for event_type, _ in EVENT_TYPES.values()]
EVENT_TYPE_CHOICES: list[tuple[str, str]] = [(event_type, label) for event_type, label in EVENT_TYPES.values()]
MAPPED_ACTIONS = frozenset(EVENT_TYPES)


def event_type_of(action: str) -> str | None:
    mapped = EVENT_TYPES.get(action)
    return mapped[0] if mapped else None


def message_id(event: AuditEvent) -> str:
    """webhook-id: derived from the event's chain hash, so it is the same for every endpoint and
    every retry, unique across databases, and holds no '.' (the signed content's separator)."""
    return f"msg_{event.hash[:32]}"


def _target(event: AuditEvent) -> dict[str, Any]:
    target: dict[str, Any] = {"type": event.target_type, "id": event.target_id, "name": event.target_repr}
    if event.target_type == "lifecycle.modelversion":
        # "credit-risk v3" is how a version prints (ModelVersion.__str__)
        model, _, number = event.target_repr.rpartition(" v")
        if model and number.isdigit():
            target.update({"model": model, "version": int(number)})
    return target


def payload(event: AuditEvent) -> str:
    """The body sent (and signed) for one event: canonical JSON, so it is the same bytes for
    every endpoint and every attempt."""
    data = {k: v for k, v in (event.data or {}).items() if k != "evidence"}
    body = {
        "type": event_type_of(event.action),
        "timestamp": event.created_at.isoformat().replace("+00:00", "Z"),
        "data": {
            "target": _target(event),
            "actor": event.actor_username,
            "details": data,
            "audit_event": {"seq": event.seq, "action": event.action, "hash": event.hash},
        },
    }
    return canonical_json(body)
