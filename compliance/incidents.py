"""Serious incidents (EU AI Act art. 73): the register, the reporting clock and the evidence freeze.

Registering an incident first writes a signed checkpoint (compliance.checkpoints): the audit
chain's head and the latest prediction seal as they stand when the incident is registered, signed
and cosigned outside the database. Its note is kept in the incident, written once with its audit
event, so an authority can later be shown that no evidence up to that moment changed since
(docs/decisions-incidents.md)."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from compliance import checkpoints
from compliance.models import REPORT_DAYS, Incident, IncidentSeverity
from core import audit
from core.actors import Actor, person
from core.checkpoints import CheckpointError, open_checkpoint
from core.errors import DomainError, Forbidden, NotFound
from core.evidence import evidence
from core.models import AuditEvent
from core.periods import parse_moment
from core.roles import RISK_OFFICERS, has_role, reads_full_audit_trail
from governance.history import deployment_at
from lifecycle.models import RegisteredModel
from serving.selectors import prediction_row

MAX_PREDICTIONS = 1000


class IncidentError(DomainError):
    code = "invalid_incident"
    status = 400


def report_due(severity: str, aware_at: datetime) -> datetime:
    """The art. 73 deadline: 15 days after awareness, 10 for a death, 2 for a widespread
    infringement or a serious disruption of critical infrastructure."""
    return aware_at + timedelta(days=REPORT_DAYS[IncidentSeverity(severity)])


def _parse(model: Any, severity: Any, aware_at: Any, summary: Any, prediction_ids: Any) -> tuple[Any, ...]:
    """Each input checked, each problem named by its field (400)."""
    if not isinstance(model, str) or not model:
        raise IncidentError("model: name the registered model.", field="model")
    found = RegisteredModel.objects.filter(name=model).first() if "\x00" not in model else None
    if found is None:
        raise IncidentError(f"model: there is no model named {model!r}.", field="model")
    if severity not in IncidentSeverity.values:
        raise IncidentError(f"severity: one of {', '.join(IncidentSeverity.values)}.", field="severity")
    if not isinstance(aware_at, str) or "\x00" in aware_at:
        raise IncidentError("aware_at: an ISO 8601 moment is required.", field="aware_at")
    moment = parse_moment(aware_at, field="aware_at")
    if moment is None:
        raise IncidentError("aware_at: an ISO 8601 moment is required.", field="aware_at")
    if moment > timezone.now() + timedelta(minutes=5):
        raise IncidentError("aware_at: the moment of awareness cannot be in the future.", field="aware_at")
    if not isinstance(summary, str) or not summary.strip():
        raise IncidentError("summary: describe the incident.", field="summary")
    ids = prediction_ids if prediction_ids is not None else []
    if not isinstance(ids, list) or len(ids) > MAX_PREDICTIONS or not all(isinstance(i, str) for i in ids):
        raise IncidentError(
            f"prediction_ids: a list of at most {MAX_PREDICTIONS} prediction ids.", field="prediction_ids"
        )
    for pid in ids:
        record, row = prediction_row(pid)
        if record is None or row is None or record.model_name != found.name:
            raise IncidentError(
                f"prediction_ids: {pid!r} is not a logged decision of {found.name} (<id>.<row>).",
                field="prediction_ids",
            )
    return found, moment, summary.strip(), sorted(set(ids))


def register_incident(
    *,
    actor: Actor,
    model: Any,
    severity: Any,
    aware_at: Any,
    summary: Any,
    prediction_ids: Any = None,
    corrective_actions: Any = "",
) -> Incident:
    """A risk officer registers a serious incident: the deadline is set from the moment of
    awareness, and a signed checkpoint taken now freezes the evidence; written once, audited."""
    if not has_role(actor, RISK_OFFICERS):
        raise Forbidden("Only risk officers register incidents.")
    found, moment, text, ids = _parse(model, severity, aware_at, summary, prediction_ids)
    if not isinstance(corrective_actions, str):
        raise IncidentError("corrective_actions: a text.", field="corrective_actions")
    # The freeze first, outside the transaction: it signs committed history only. The incident's
    # own event follows it in the chain and names the checkpoint it froze.
    try:
        frozen = checkpoints.write_checkpoint()
    except CheckpointError as exc:  # no signing key configured: nothing is registered without its freeze
        raise IncidentError(
            f"The evidence freeze could not be written: {exc.message}", status=503, code="checkpoint_unavailable"
        ) from None
    with transaction.atomic():
        deployment = deployment_at(found, moment)
        incident = Incident.objects.create(
            registered_model=found,
            version=deployment.version if deployment else None,
            severity=severity,
            aware_at=moment,
            report_due=report_due(severity, moment),
            summary=text,
            corrective_actions=corrective_actions.strip(),
            prediction_ids=ids,
            checkpoint=frozen.note,
            checkpoint_seq=frozen.checkpoint.seq,
            registered_by=person(actor),
            registered_by_username=person(actor).get_username(),
            registered_at=timezone.now(),
        )
        audit.record(
            audit.INCIDENT_REGISTERED,
            actor=actor,
            target=incident,
            data={
                "incident": str(incident.public_id),
                "model": found.name,
                "version": incident.version.version if incident.version else None,
                "severity": severity,
                "aware_at": moment.isoformat(),
                "report_due": incident.report_due.isoformat(),
                "checkpoint_seq": frozen.checkpoint.seq,
                "checkpoint_head": frozen.checkpoint.head_hash,
                "predictions": len(ids),
            },
        )
    return incident


@dataclass(frozen=True)
class FreezeVerification:
    ok: bool
    message: str


def verify_freeze(incident: Incident) -> FreezeVerification:
    """The incident's checkpoint is signed by our key and the audit chain still holds the event
    it signed, with the same hash (and the seal with the same root): nothing up to the
    registration was rewritten."""
    try:
        frozen = open_checkpoint(incident.checkpoint, checkpoints.public_key().public_key)
    except CheckpointError as exc:
        return FreezeVerification(False, f"The stored checkpoint does not verify: {exc.message}")
    if frozen.seq != incident.checkpoint_seq:
        return FreezeVerification(False, "The stored checkpoint names another audit event than the incident recorded.")
    if frozen.seq:
        stored = AuditEvent.objects.filter(seq=frozen.seq).values_list("hash", flat=True).first()
        if stored != frozen.head_hash:
            return FreezeVerification(False, f"Audit event #{frozen.seq} no longer has the hash the checkpoint signed.")
    from serving.models import PredictionSeal

    if frozen.seal_id is not None:
        root = PredictionSeal.objects.filter(pk=frozen.seal_id).values_list("root", flat=True).first()
        if root != frozen.seal_root:
            return FreezeVerification(False, f"Seal #{frozen.seal_id} no longer has the root the checkpoint signed.")
    return FreezeVerification(
        True, f"Signed checkpoint of audit event #{frozen.seq} ({frozen.time:%Y-%m-%d %H:%M:%S} UTC) verifies."
    )


def get_incident(public_id: Any, *, actor: Actor) -> Incident:
    """One incident, for risk officers and auditors."""
    if not reads_full_audit_trail(actor):
        raise Forbidden("Only risk officers and auditors read incidents.")
    try:
        wanted = uuid.UUID(str(public_id))
    except ValueError:
        raise NotFound(f"There is no incident {public_id}.") from None
    found = Incident.objects.select_related("registered_model", "version").filter(public_id=wanted).first()
    if found is None:
        raise NotFound(f"There is no incident {public_id}.")
    return found


def incident_record(incident: Incident) -> dict[str, Any]:
    """The API's and the export's record of an incident."""
    return {
        "id": str(incident.public_id),
        "model": incident.registered_model.name,
        "version": incident.version.version if incident.version else None,
        "severity": incident.severity,
        "aware_at": incident.aware_at,
        "report_due": incident.report_due,
        "summary": incident.summary,
        "corrective_actions": incident.corrective_actions,
        "prediction_ids": incident.prediction_ids,
        "checkpoint": incident.checkpoint,
        "checkpoint_seq": incident.checkpoint_seq,
        "registered_by": incident.registered_by_username,
        "registered_at": incident.registered_at,
        "sha256": evidence(incident)[0]["sha256"],
    }


def incidents_due_soon(now: datetime | None = None) -> list[Incident]:
    """Incidents whose deadline is within INCIDENT_REMIND_BEFORE_HOURS (and not passed by more
    than a day) that no reminder was sent for yet."""
    now = now or timezone.now()
    window = timedelta(hours=settings.INCIDENT_REMIND_BEFORE_HOURS)
    candidates = Incident.objects.filter(report_due__lte=now + window, report_due__gt=now - timedelta(days=1))
    reminded = set(
        AuditEvent.objects.filter(action=audit.INCIDENT_REMINDED, target_type="compliance.incident").values_list(
            "target_id", flat=True
        )
    )
    return [i for i in candidates.select_related("registered_model") if str(i.pk) not in reminded]


def remind_incidents(now: datetime | None = None) -> list[int]:
    """Mail risk officers about each incident whose report is due soon, once each (audited)."""
    sent = []
    officers = sorted(
        get_user_model()
        .objects.filter(groups__name=RISK_OFFICERS, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )
    for incident in incidents_due_soon(now):
        with transaction.atomic():
            # an incident is evidence, which the runtime role may not lock (FOR UPDATE needs the
            # UPDATE grant): reminders are serialised on the model's row instead
            RegisteredModel.objects.select_for_update().filter(pk=incident.registered_model_id).first()
            locked = Incident.objects.get(pk=incident.pk)
            if AuditEvent.objects.filter(
                action=audit.INCIDENT_REMINDED, target_type="compliance.incident", target_id=str(locked.pk)
            ).exists():
                continue
            audit.record(
                audit.INCIDENT_REMINDED,
                actor=None,
                target=locked,
                data={"incident": str(locked.public_id), "report_due": locked.report_due.isoformat(), "to": officers},
            )
            subject = (
                f"Serious incident on {incident.registered_model.name}: the art. 73 report is due "
                f"{incident.report_due:%Y-%m-%d %H:%M} UTC"
            )
            body = (
                f"{subject}.\n\nSeverity: {incident.get_severity_display()}\nAware since: "
                f"{incident.aware_at:%Y-%m-%d %H:%M} UTC\n\n{incident.summary}\n"
            )
            transaction.on_commit(functools.partial(send_mail, subject, body, None, officers, fail_silently=True))
        sent.append(incident.pk)
    return sent


def incident_report_context(incident: Incident) -> tuple[dict[str, Any], dict[str, Any]]:
    """The export's context and evidence, with no generation time: the same incident renders the
    same bytes (compliance.reports)."""
    from governance.history import live_at
    from serving.selectors import prediction_row

    record = incident_record(incident)
    at_awareness = live_at(incident.registered_model, incident.aware_at)
    decisions = []
    for pid in incident.prediction_ids:
        logged, row = prediction_row(pid)
        if logged is None or row is None:
            continue
        outputs = orjson.loads(logged.outputs_json or "{}")
        predictions = outputs.get("predictions") or []
        decisions.append(
            {
                "id": pid,
                "at": logged.created_at,
                "version": logged.version_number,
                "prediction": predictions[row] if row < len(predictions) else "",
            }
        )
    freeze = verify_freeze(incident)
    context = {
        "title": f"Serious incident {incident.public_id}",
        "i": record,
        "provider": settings.PROVIDER_NAME,
        "model": incident.registered_model,
        "version": incident.version,
        "approvers": at_awareness.get("approvers", []),
        "severity_label": incident.get_severity_display(),
        "days": REPORT_DAYS[IncidentSeverity(incident.severity)],
        "decisions": decisions,
        "freeze": freeze,
    }
    evidence_data = {
        "report": {"kind": "incident", "schema": "model-governance/incident-report/1"},
        "incident": record,
        "provider": settings.PROVIDER_NAME,
        "live_at_awareness": at_awareness,
        "decisions": decisions,
        "freeze": {"ok": freeze.ok, "message": freeze.message},
    }
    return context, evidence_data


def export_incident(public_id: Any, *, actor: Actor) -> Any:
    """The incident's report for the authority as PDF/A (the same bytes for the same incident),
    its SHA-256 recorded in the trail."""
    from compliance import services

    incident = get_incident(public_id, actor=actor)
    context, evidence_data = incident_report_context(incident)
    report = services._render("compliance/reports/incident.html", context, evidence_data, moment=incident.registered_at)
    with transaction.atomic():
        audit.record(
            audit.REPORT_GENERATED,
            actor=actor,
            target=incident,
            data={"kind": "incident", "sha256": report.sha256, "evidence_sha256": report.evidence_sha256},
        )
    return report
