"""The control map (docs/design.md, "Model risk management", Controls): the library is data
(compliance/controls.yaml); each control names evidence queries implemented here. As of a date a
control of a model is `proven` (every query it names found rows: each row and its content hash),
`attested` (a risk officer's attestation in force then: who, when, what) or `missing`.

Every query is bounded (a few newest rows, read through an index), so the map costs about the same
for a model with a thousand or a million logged predictions."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from django.db import models, transaction
from django.db.models import QuerySet
from django.utils import timezone

from compliance.models import ControlAttestation, Incident
from core import audit, caches
from core.actors import Actor, person
from core.errors import DomainError, Forbidden
from core.evidence import columns, content_hash, hashed_fields
from core.models import AuditEvent
from core.roles import RISK_OFFICERS, has_role
from governance import models as governance_models
from governance.models import CheckRun, CheckStatus, Decision, DecisionKind, Deployment, Finding, Policy
from lifecycle.models import Dataset, ModelCard, ModelVersion, RegisteredModel
from monitoring.models import MonitoringWindow
from serving.models import DecisionReview, PredictionLog, PredictionOutcome, PredictionSeal

LIBRARY = Path(__file__).with_name("controls.yaml")
ROWS = 5  # evidence rows listed per query (the newest)
STATUSES = ("proven", "attested", "missing")


class ControlError(DomainError):
    code = "invalid_control"
    status = 400


@functools.cache
def library() -> list[dict[str, Any]]:
    """The controls, sorted by id; a control naming an unknown query is an error at load time."""
    data = yaml.safe_load(LIBRARY.read_text(encoding="utf-8"))
    controls = sorted(data["controls"], key=lambda c: c["id"])
    for control in controls:
        unknown = [q for q in control["evidence"] if q not in EVIDENCE]
        if unknown:
            raise ValueError(f"control {control['id']} names unknown evidence queries: {unknown}")
    return controls


caches.register("compliance.controls.library", library.cache_clear)


def control_ids() -> set[str]:
    return {c["id"] for c in library()}


# --- evidence rows ----------------------------------------------------------------------------
def _rows(queryset: QuerySet[Any], order: str = "-pk") -> list[dict[str, str]]:
    """The newest ROWS rows of an evidence or governed table with their content hashes (one
    query; the same hash core.evidence records and verification recomputes)."""
    model = queryset.model
    values = list(queryset.order_by(order).values(*columns(model))[:ROWS])
    label = model._meta.label_lower
    return [{"row": f"{label}:{v['id']}", "sha256": content_hash(v, hashed_fields(model, v))} for v in values]


def _events(queryset: QuerySet[AuditEvent]) -> list[dict[str, str]]:
    """Audit events as evidence: the event's own chained hash."""
    return [
        {"row": f"core.auditevent:{seq}", "sha256": h}
        for seq, h in queryset.order_by("-seq").values_list("seq", "hash")[:ROWS]
    ]


def _versions(model: RegisteredModel) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(registered_model=model)


def _model_events(model: RegisteredModel, at: datetime, *actions: str) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(
        target_type="lifecycle.registeredmodel", target_id=str(model.pk), action__in=actions, created_at__lte=at
    )


def _checks(kind: str, *, passed: bool = True) -> Callable[[RegisteredModel, datetime], list[dict[str, str]]]:
    """Finished checks of a kind: passed ones (a claim such as accuracy needs the check to hold),
    or passed or failed when the control asks that the examination was made (bias: a failed fairness
    check is the examination, and the approval that overrode it says why)."""

    def query(model: RegisteredModel, at: datetime) -> list[dict[str, str]]:
        found = CheckRun.objects.filter(version__registered_model=model, kind=kind, finished_at__lte=at)
        verdicts = (CheckStatus.PASSED,) if passed else (CheckStatus.PASSED, CheckStatus.FAILED)
        return _rows(found.filter(status__in=verdicts))

    return query


def approval_decisions(model: RegisteredModel, at: datetime) -> list[dict[str, str]]:
    approvals = Decision.objects.filter(version__registered_model=model, kind=DecisionKind.APPROVE)
    return _rows(approvals.filter(created_at__lte=at))


def deployments(model: RegisteredModel, at: datetime) -> list[dict[str, str]]:
    return _rows(Deployment.objects.filter(registered_model=model, deployed_at__lte=at))


def model_cards(model: RegisteredModel, at: datetime) -> list[dict[str, str]]:
    submitted = _versions(model).filter(submitted_at__lte=at)
    return _rows(ModelCard.objects.filter(version__in=submitted))


def datasets(model: RegisteredModel, at: datetime) -> list[dict[str, str]]:
    used = _versions(model).filter(created_at__lte=at)
    ids = set(used.values_list("training_dataset_id", flat=True)) | set(
        used.values_list("evaluation_dataset_id", flat=True)
    )
    return _rows(Dataset.objects.filter(pk__in=ids - {None}))


def version_manifests(model: RegisteredModel, at: datetime) -> list[dict[str, str]]:
    """Versions whose approvals bound a manifest, and were submitted by then."""
    return _rows(_versions(model).exclude(manifest_sha256="").filter(submitted_at__lte=at))


def prediction_log_sealed(model: RegisteredModel, at: datetime) -> list[dict[str, str]]:
    """The newest Merkle seal over each version's logged answers by then (the (version,
    created_at) index: a short backward scan per version, whatever the log's size)."""
    seal_ids: set[int] = set()
    for version_id in _versions(model).values_list("pk", flat=True):
        newest = (
            PredictionLog.objects.filter(version_id=version_id, created_at__lte=at, seal__isnull=False)
            .order_by("-created_at")
            .values_list("seal_id", flat=True)[:1]
        )
        seal_ids.update(newest)
    seals = PredictionSeal.objects.filter(pk__in=seal_ids, created_at__lte=at).order_by("-pk")[:ROWS]
    return [{"row": f"serving.predictionseal:{s.pk}", "sha256": s.root} for s in seals]


def audit_chain(model: RegisteredModel, at: datetime) -> list[dict[str, str]]:
    """The audit chain's head by then: its hash covers every event before it."""
    return _events(AuditEvent.objects.filter(created_at__lte=at))[:1]


def monitoring_windows(model: RegisteredModel, at: datetime) -> list[dict[str, str]]:
    return _rows(MonitoringWindow.objects.filter(version__registered_model=model, computed_at__lte=at))


def outcomes(model: RegisteredModel, at: datetime) -> list[dict[str, str]]:
    recent = []
    for version_id in _versions(model).values_list("pk", flat=True):
        recent += list(
            PredictionOutcome.objects.filter(record__version_id=version_id, received_at__lte=at)
            .order_by("-pk")
            .values_list("pk", flat=True)[:ROWS]
        )
    return _rows(PredictionOutcome.objects.filter(pk__in=recent))


def human_reviews(model: RegisteredModel, at: datetime) -> list[dict[str, str]]:
    recent = []
    for version_id in _versions(model).values_list("pk", flat=True):
        recent += list(
            DecisionReview.objects.filter(record__version_id=version_id, created_at__lte=at)
            .order_by("-pk")
            .values_list("pk", flat=True)[:ROWS]
        )
    return _rows(DecisionReview.objects.filter(pk__in=recent))


def findings(model: RegisteredModel, at: datetime) -> list[dict[str, str]]:
    return _rows(Finding.objects.filter(version__registered_model=model, opened_at__lte=at))


def risk_tier_set(model: RegisteredModel, at: datetime) -> list[dict[str, str]]:
    return _events(_model_events(model, at, audit.RISK_TIER_SET))


def policy_in_force(model: RegisteredModel, at: datetime) -> list[dict[str, str]]:
    changes = _events(
        AuditEvent.objects.filter(action__in=(audit.POLICY_CHANGED, audit.POLICY_CREATED), created_at__lte=at)
    )[:1]
    return changes or _rows(Policy.objects.all())[:1]  # the policy the migration created, unchanged since


def role_assignments(model: RegisteredModel, at: datetime) -> list[dict[str, str]]:
    return _events(AuditEvent.objects.filter(action=audit.ROLE_GRANTED, created_at__lte=at))


def incident_register(model: RegisteredModel, at: datetime) -> list[dict[str, str]]:
    return _rows(Incident.objects.filter(registered_model=model, registered_at__lte=at))


def fallback_designated(model: RegisteredModel, at: datetime) -> list[dict[str, str]]:
    return _events(_model_events(model, at, audit.MODEL_FALLBACK_SET))


def technical_documentation(model: RegisteredModel, at: datetime) -> list[dict[str, str]]:
    ids = [str(pk) for pk in _versions(model).values_list("pk", flat=True)]
    return _events(
        AuditEvent.objects.filter(
            action=audit.REPORT_GENERATED,
            target_type="lifecycle.modelversion",
            target_id__in=ids,
            created_at__lte=at,
            data__kind="technical_documentation",
        )
    )


def validation_report(model: RegisteredModel, at: datetime) -> list[dict[str, str]]:
    """A validator's report (governance's validation reports, where that exists): none here
    means the control is missing, unless attested."""
    report: Any = getattr(governance_models, "ValidationReport", None)
    if report is None or not issubclass(report, models.Model):
        return []
    fields = {f.name for f in report._meta.get_fields()}
    found = report.objects.filter(version__registered_model=model)
    if "created_at" in fields:
        found = found.filter(created_at__lte=at)
    return _rows(found)


EVIDENCE: dict[str, Callable[[RegisteredModel, datetime], list[dict[str, str]]]] = {
    "approval_decisions": approval_decisions,
    "audit_chain": audit_chain,
    "datasets": datasets,
    "deployments": deployments,
    "fairness_checks": _checks("fairness", passed=False),
    "fallback_designated": fallback_designated,
    "findings": findings,
    "human_reviews": human_reviews,
    "incident_register": incident_register,
    "model_cards": model_cards,
    "monitoring_windows": monitoring_windows,
    "outcomes": outcomes,
    "policy_in_force": policy_in_force,
    "prediction_log_sealed": prediction_log_sealed,
    "reproducibility_checks": _checks("reproducibility"),
    "risk_tier_set": risk_tier_set,
    "role_assignments": role_assignments,
    "technical_documentation": technical_documentation,
    "validation_checks": _checks("validation"),
    "validation_report": validation_report,
    "version_manifests": version_manifests,
}


# --- the map --------------------------------------------------------------------------------
def control_map(model: RegisteredModel, as_of: datetime) -> dict[str, Any]:
    """Each control of the library for this model as of the date, sorted by id. Each query runs
    once however many controls name it."""
    found: dict[str, list[dict[str, str]]] = {}
    attested: dict[str, ControlAttestation] = {}
    for a in ControlAttestation.objects.filter(registered_model=model, attested_at__lte=as_of).order_by(
        "attested_at", "pk"
    ):
        attested[a.control_id] = a  # the latest in force
    controls = []
    for control in library():
        rows: list[dict[str, str]] = []
        missing = []
        for name in control["evidence"]:
            if name not in found:
                found[name] = EVIDENCE[name](model, as_of)
            if not found[name]:
                missing.append(name)
            rows += [{"query": name, **r} for r in found[name]]
        attestation = attested.get(control["id"])
        status = "proven" if not missing else ("attested" if attestation else "missing")
        entry: dict[str, Any] = {
            "id": control["id"],
            "source": control["source"],
            "reference": control["reference"],
            "title": control["title"],
            "status": status,
            "queries": list(control["evidence"]),
            "missing_evidence": missing,
            "evidence": sorted(rows, key=lambda r: (r["query"], r["row"])),
        }
        if attestation is not None:
            entry["attestation"] = {
                "by": attestation.attested_by_username,
                "at": attestation.attested_at,
                "statement": attestation.statement,
                "row": f"compliance.controlattestation:{attestation.pk}",
            }
        controls.append(entry)
    counts = {s: sum(1 for c in controls if c["status"] == s) for s in STATUSES}
    return {"model": model.name, "as_of": as_of, "counts": counts, "controls": controls}


@transaction.atomic
def attest_control(model_id: int, control_id: str, *, actor: Actor, statement: Any) -> ControlAttestation:
    """A risk officer attests a control of the library for a model (written once, audited)."""
    if not has_role(actor, RISK_OFFICERS):
        raise Forbidden("Only risk officers attest controls.")
    if control_id not in control_ids():
        raise ControlError(f"{control_id!r} is not a control of the library.", field="control", status=404)
    text = statement.strip() if isinstance(statement, str) else ""
    if not text:
        raise ControlError("statement: say how the control is met.", field="statement")
    model = RegisteredModel.objects.get(pk=model_id)
    attestation = ControlAttestation.objects.create(
        registered_model=model,
        control_id=control_id,
        statement=text,
        attested_by=person(actor),
        attested_by_username=person(actor).get_username(),
        attested_at=timezone.now(),
    )
    audit.record(
        audit.CONTROL_ATTESTED,
        actor=actor,
        target=attestation,
        data={"model": model.name, "control": control_id, "statement": text},
    )
    return attestation


def controls_report_context(model: RegisteredModel, as_of: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """The PDF's context and evidence: only the inputs (model, date) and what they select,
    sorted, with no generation time: the same inputs give the same bytes."""
    mapped = control_map(model, as_of)
    context = {**mapped, "title": f"Control map {model.name} {as_of:%Y-%m-%d}", "model": model}
    evidence = {"report": {"kind": "controls", "schema": "model-governance/control-map/1"}, **mapped}
    return context, evidence


def export_controls(model_id: int, as_of: datetime, *, actor: Actor) -> Any:
    """The control map as PDF/A: the same bytes for the same model, date and evidence (its only
    date is `as_of`); its SHA-256 recorded in the trail."""
    from compliance import services

    model = RegisteredModel.objects.get(pk=model_id)
    context, evidence = controls_report_context(model, as_of)
    report = services._render("compliance/reports/controls.html", context, evidence, moment=as_of)
    with transaction.atomic():
        audit.record(
            audit.REPORT_GENERATED,
            actor=actor,
            target=model,
            data={"kind": "controls", "as_of": as_of.isoformat(), "sha256": report.sha256},
        )
    return report
