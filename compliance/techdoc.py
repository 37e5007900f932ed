"""The EU AI Act technical documentation of one version (Regulation (EU) 2024/1689, Annex IV):
its nine sections filled from what the product holds, as a PDF/A-3b with the same data attached
as evidence.json. Where the product holds nothing the section says "not recorded", and what only
the provider can state is marked "to be completed by the provider": nothing is invented."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.conf import settings
from django.db import transaction

from compliance import reports
from compliance.errors import ReportError
from compliance.report_context import evidence_bytes, report_point, verification
from compliance.report_tables import parameter_rows
from core import audit
from core.actors import Actor
from core.models import AuditEvent
from governance.models import CheckKind, Decision, DecisionKind, Deployment, Policy
from governance.policies import active_policy
from governance.records import version_data
from lifecycle.models import MlflowImport, ModelVersion, RiskTier
from monitoring import selectors as monitoring_selectors
from serving import selectors as serving_selectors
from serving.models import DecisionReview

TEMPLATE = "compliance/reports/technical_documentation.html"
SCHEMA = "model-governance/technical-documentation/1"
KIND = "technical_documentation"
MAX_EVENTS_SHOWN = 80
MAX_WINDOWS_SHOWN = 14

# Validation metric -> (policy field, comparison): the same bounds governance.checks.validate uses.
METRIC_BOUNDS = {
    "accuracy": ("min_accuracy", "≥"),
    "balanced_accuracy": ("min_balanced_accuracy", "≥"),
    "roc_auc": ("min_roc_auc", "≥"),
    "f1": ("min_f1", "≥"),
    "r2": ("min_r2", "≥"),
    "mae": ("max_mae", "≤"),
    "rmse": ("max_rmse", "≤"),
}

# What the product follows (Annex IV point 7). None of these is a harmonised standard published
# in the Official Journal under Article 40: said plainly in the document.
SPECIFICATIONS = (
    ("Model cards", "Mitchell et al., “Model Cards for Model Reporting”, FAT* 2019", "The model card of section 1."),
    ("Open Inference Protocol v2", "KServe / NVIDIA Triton inference protocol", "The /v2/ serving endpoints."),
    ("RFC 6962", "Certificate Transparency Merkle tree hashing (IETF)", "Seals of the prediction log."),
    ("C2SP signed checkpoints", "C2SP tlog-checkpoint / signed-note (Ed25519)", "Checkpoints of the audit chain."),
    ("PDF/A-3 (ISO 19005-3)", "Archivable PDF with embedded files", "This document and its evidence.json."),
    ("Standard Webhooks 1.0", "HMAC-SHA256 signed event notifications", "Notifications to CI/CD systems."),
)

DECLARATION_FIELDS = (
    "AI system name and type, and any additional unambiguous reference allowing its identification and traceability",
    "Name and address of the provider or, where applicable, of its authorised representative",
    "A statement that the declaration is issued under the sole responsibility of the provider",
    "A statement that the AI system conforms with this Regulation and, if applicable, with any other relevant "
    "Union law that provides for the issuing of the declaration",
    "Where the AI system involves the processing of personal data, a statement that it complies with "
    "Regulations (EU) 2016/679 and (EU) 2018/1725 and Directive (EU) 2016/680",
    "References to any relevant harmonised standards used or any other common specification in relation to "
    "which conformity is declared",
    "Where applicable, the name and identification number of the notified body, a description of the conformity "
    "assessment procedure performed, and identification of the certificate issued",
    "The place and date of issue of the declaration, the name and function of the person who signed it, and an "
    "indication for, or on behalf of whom, that person signed, and a signature",
)


def _general(v: ModelVersion, api: dict[str, Any], card: dict[str, str]) -> dict[str, Any]:
    model = v.registered_model
    tier_event = (
        AuditEvent.objects.filter(action=audit.RISK_TIER_SET, target_type="lifecycle.registeredmodel")
        .filter(target_id=str(model.pk))
        .order_by("-seq")
        .first()
    )
    return {
        "model": model.name,
        "title": model.title,
        "description": model.description,
        "owner": model.owner.get_username(),
        "intended_purpose": card.get("intended_use", ""),
        "out_of_scope_uses": card.get("out_of_scope_uses", ""),
        "model_details": card.get("model_details", ""),
        "caveats_and_recommendations": card.get("caveats_and_recommendations", ""),
        "version": v.version,
        "status": v.status,
        "task": v.task,
        "artifact_sha256": v.artifact_sha256,
        "model_card_sha256": api["model_card_sha256"],
        "sklearn_version": v.sklearn_version,
        "risk_tier_proposed": model.risk_tier,
        "risk_tier_effective": model.effective_tier,
        "risk_tier_set_by_officer": bool(model.effective_risk_tier),
        "risk_tier_decision": (
            {
                "by": tier_event.actor_username or "system",
                "at": tier_event.created_at,
                "before": tier_event.data.get("before"),
                "after": tier_event.data.get("after"),
                "justification": tier_event.data.get("justification", ""),
            }
            if tier_event
            else None
        ),
        "versions": [
            {"version": o.version, "status": o.status, "created_at": o.created_at, "artifact_sha256": o.artifact_sha256}
            for o in model.versions.order_by("version")
        ],
    }


def _mlflow(v: ModelVersion) -> dict[str, Any] | None:
    """The MLflow lineage, if the version was imported."""
    row = MlflowImport.objects.filter(version=v).first()
    if row is None:
        return None
    return {
        "run_id": row.run_id,
        "model_uuid": row.model_uuid,
        "mlflow_version": row.mlflow_version,
        "sklearn_version": row.sklearn_version,
        "serialization_format": row.serialization_format,
        "signature": row.signature,
        "pip_requirements": row.pip_requirements,
        "mlmodel_sha256": row.mlmodel_sha256,
        "imported_by": row.imported_by_username,
        "imported_at": row.imported_at,
    }


def _elements(v: ModelVersion, api: dict[str, Any], card: dict[str, str]) -> dict[str, Any]:
    lineage = api["lineage"]
    return {
        "estimator_class": v.estimator_class,
        "sklearn_version": v.sklearn_version,
        "params": v.params,
        "artifact_types": v.artifact_types,
        "input_schema": v.input_schema,
        "classes": v.classes,
        "label_column": v.label_column,
        "sensitive_features": v.sensitive_features,
        "training_dataset": lineage["training_dataset"],
        "evaluation_dataset": lineage["evaluation_dataset"],
        "training_data_notes": card.get("training_data_notes", ""),
        "evaluation_data_notes": card.get("evaluation_data_notes", ""),
        "parents": lineage["parents"],
        "code_repository": v.code_repository,
        "code_commit": v.code_commit,
        "mlflow": _mlflow(v),
        "created_by": api["created_by"],
        "created_at": api["created_at"],
        "submitted_by": api["submitted_by"],
        "submitted_at": api["submitted_at"],
    }


def _oversight(v: ModelVersion, api: dict[str, Any], policy: Policy) -> dict[str, Any]:
    reviews = DecisionReview.objects.filter(record__version=v)
    by_action = Counter(reviews.values_list("action", flat=True))
    return {
        "approvals_required": {t: policy.approvals_for(t) for t in RiskTier.values},
        "approvals_required_for_tier": policy.approvals_for(v.registered_model.effective_tier),
        "approvals": [d for d in api["decisions"] if d["kind"] == DecisionKind.APPROVE],
        "decisions": api["decisions"],
        "decision_reviews": {
            "total": sum(by_action.values()),
            "confirmed": by_action.get("confirmed", 0),
            "overridden": by_action.get("overridden", 0),
            "latest": [
                {
                    "prediction": f"{r.record.public_id}.{r.row}",
                    "action": r.action,
                    "reviewer": r.reviewer,
                    "at": r.created_at,
                    "justification": r.justification,
                }
                for r in reviews.select_related("record").order_by("-created_at", "-pk")[:10]
            ],
        },
    }


def _fairness_rows(check: dict[str, Any]) -> list[dict[str, Any]]:
    policy = check["policy"]
    rows = []
    for f in check["metrics"].get("features", []):
        for name, value in (f.get("headline") or {}).items():
            compared = not f.get("compared") or name in f["compared"]
            ratio = "ratio" in name
            rows.append(
                {
                    "feature": f["feature"],
                    "metric": name,
                    "value": value,
                    "bound": (
                        ("≥", policy.get("min_fairness_ratio"))
                        if ratio
                        else ("≤", policy.get("max_fairness_difference"))
                    )
                    if compared
                    else None,
                    "status": f.get("status", ""),
                }
            )
    return rows


def _metrics(api: dict[str, Any], card: dict[str, str]) -> dict[str, Any]:
    checks = {c["kind"]: c for c in api["checks"]}
    validation = checks.get(CheckKind.VALIDATION)
    rows = []
    if validation:
        for name, value in validation["metrics"].get("metrics", {}).items():
            field, sign = METRIC_BOUNDS.get(name, ("", ""))
            bound = validation["policy"].get(field) if field else None
            rows.append({"metric": name, "value": value, "sign": sign, "bound": bound, "policy_field": field})
    fairness = checks.get(CheckKind.FAIRNESS)
    reproducibility = checks.get(CheckKind.REPRODUCIBILITY)
    return {
        "card_metrics": card.get("metrics", ""),
        "card_factors": card.get("factors", ""),
        "validation": rows,
        "validation_rows": validation["metrics"].get("rows") if validation else None,
        "validation_status": validation["status"] if validation else None,
        "fairness": _fairness_rows(fairness) if fairness else [],
        "fairness_status": fairness["status"] if fairness else None,
        "fairness_waiver": fairness["metrics"].get("waiver", "") if fairness else "",
        "min_group_size": fairness["policy"].get("min_group_size") if fairness else None,
        "reproducibility": (
            {
                "status": reproducibility["status"],
                "agreement": reproducibility["metrics"].get("agreement"),
                "agreement_pct": (
                    round(reproducibility["metrics"]["agreement"] * 100, 2)
                    if reproducibility["metrics"].get("agreement") is not None
                    else None
                ),
                "threshold": reproducibility["policy"].get("min_reproducibility_agreement"),
            }
            if reproducibility
            else None
        ),
    }


def _risk(v: ModelVersion, api: dict[str, Any], card: dict[str, str]) -> dict[str, Any]:
    findings = [monitoring_selectors.finding_data(f) for f in monitoring_selectors.findings_of(v)]
    return {
        "tier_effective": v.registered_model.effective_tier,
        "tier_proposed": v.registered_model.risk_tier,
        "checks": [
            {
                "kind": c["kind"],
                "status": c["status"],
                "gating": c["gating"],
                "finished_at": c["finished_at"],
                "warning": c["warning"],
                "error": c["error"],
            }
            for c in api["checks"]
        ],
        "review_round": v.review_round,
        "overrides": [d for d in api["decisions"] if d["override"]],
        "findings": findings,
        "open_findings": [f for f in findings if f["status"] == "open"],
        "ethical_considerations": card.get("ethical_considerations", ""),
    }


def _changes(v: ModelVersion) -> dict[str, Any]:
    model = v.registered_model
    events = (
        AuditEvent.objects.filter(target_type="lifecycle.modelversion", target_id=str(v.pk))
        | AuditEvent.objects.filter(target_type="lifecycle.registeredmodel", target_id=str(model.pk))
    ).exclude(action=audit.REPORT_GENERATED)  # downloads of documents are not changes of the system
    return {
        "deployments": [
            {
                "version": d.version.version,
                "deployed_at": d.deployed_at,
                "deployed_by": d.deployed_by.get_username(),
                "ended_at": d.ended_at,
                "ended_by": d.ended_by.get_username() if d.ended_by else None,
                "end_reason": d.end_reason,
            }
            for d in Deployment.objects.filter(registered_model=model)
            .select_related("version", "deployed_by", "ended_by")
            .order_by("deployed_at", "pk")
        ],
        "recertifications": [
            {
                "by": d.actor_username,
                "at": d.created_at,
                "snapshot_sha256": d.snapshot_sha256,
                "expires_at": d.approval_expires_at,
                "justification": d.justification,
            }
            for d in Decision.objects.filter(version=v, kind=DecisionKind.RECERTIFY).order_by("created_at", "pk")
        ],
        "events": [
            {
                "seq": e.seq,
                "at": e.created_at,
                "by": e.actor_username or "system",
                "action": e.action,
                "target": e.target_repr,
                "hash": e.hash,
            }
            for e in events.order_by("seq")
        ],
    }


def _post_market(v: ModelVersion, policy: Policy) -> dict[str, Any]:
    windows = list(monitoring_selectors.windows_of(v))
    latest = windows[-1] if windows else None
    tier = v.registered_model.effective_tier
    return {
        "psi_warn": policy.psi_warn,
        "psi_alert": policy.psi_alert,
        "recertify_after_days": {t: policy.recertify_after_days(t) for t in RiskTier.values},
        "recertify_after_days_for_tier": policy.recertify_after_days(tier),
        "recertify_reminder_days": policy.recertify_reminder_days,
        "on_expiry": policy.on_expiry,
        "on_expiry_text": policy.get_on_expiry_display(),
        "monitor_window": str(settings.MONITOR_WINDOW),
        "fairness_thresholds": {
            "max_fairness_difference": policy.max_fairness_difference,
            "min_fairness_ratio": policy.min_fairness_ratio,
            "min_group_size": policy.min_group_size,
        },
        "approval_expires_at": v.approval_expires_at,
        "windows_stored": len(windows),
        "windows_by_level": dict(Counter(w.level for w in windows)),
        "first_window_start": windows[0].start if windows else None,
        "last_window_end": latest.end if latest else None,
        "rows_monitored": sum(w.rows for w in windows),
        "latest_windows": [monitoring_selectors.window_data(w) for w in windows[-MAX_WINDOWS_SHOWN:]],
        "latest_drift": monitoring_selectors.window_data(latest)["drift"] if latest else {},
        "latest_prediction_drift": monitoring_selectors.window_data(latest)["prediction_drift"] if latest else {},
        "latest_performance": latest.performance if latest else {},
        "serving": serving_selectors.serving_summary(version_id=v.pk),
    }


def _standards() -> list[dict[str, str]]:
    return [{"name": n, "reference": r, "applied_to": a} for n, r, a in SPECIFICATIONS]


def technical_documentation(version: ModelVersion, *, actor: Actor = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(template context, evidence) of the Annex IV documentation of one version: plain data,
    shown by the template and attached as evidence.json; as of the newest audit event that is not
    a reading, with no generation time, so the same inputs give the same bytes."""
    point = report_point()
    api = version_data(version)
    card = api["model_card"]
    policy = active_policy()
    sections: dict[str, Any] = {
        "general": _general(version, api, card),
        "elements": _elements(version, api, card),
        "oversight": _oversight(version, api, policy),
        "metrics": _metrics(api, card),
        "risk": _risk(version, api, card),
        "changes": _changes(version),
        "standards": _standards(),
        "declaration": {"status": "to be completed by the provider", "fields": list(DECLARATION_FIELDS)},
        "post_market": _post_market(version, policy),
    }
    verified = verification(serving_selectors.seals_covering(version.pk), point=point)
    evidence = {
        "report": {"kind": KIND, "as_of": point.at, "as_of_event": point.seq, "schema": SCHEMA},
        "version": api,
        "policy": {"name": policy.name, **policy.values()},
        "annex_iv": sections,
        "audit_verification": verified,
    }
    events: list[dict[str, Any]] = sections["changes"]["events"]
    context = {
        **sections,
        "title": f"Technical documentation: {version}",
        "v": version,
        "api": api,
        "policy": policy,
        # a pipeline's steps and their parameters as rows of a table, not a JSON dump
        "params_shown": parameter_rows(version.params or {}),
        "events_shown": events[-MAX_EVENTS_SHOWN:],
        "events_more": max(0, len(events) - MAX_EVENTS_SHOWN),
        "verification": verified,
        "as_of": point.at,
        "as_of_event": point.seq,
    }
    return context, evidence


def generate_technical_documentation(version_id: int, *, actor: Actor) -> reports.Report:
    """Render the Annex IV documentation of one version and record its SHA-256 in the trail,
    as the version report does."""
    version = ModelVersion.objects.select_related(
        "registered_model__owner", "training_dataset", "evaluation_dataset", "parent", "created_by", "submitted_by"
    ).get(pk=version_id)
    context, evidence = technical_documentation(version, actor=actor)
    try:
        report = reports.render_report(TEMPLATE, context, evidence=evidence_bytes(evidence), moment=context["as_of"])
    except reports.RenderError as exc:
        raise ReportError(f"The technical documentation could not be rendered: {exc}", status=503) from None
    with transaction.atomic():
        audit.record(
            audit.REPORT_GENERATED,
            actor=actor,
            target=version,
            data={
                "kind": KIND,
                "sha256": report.sha256,
                "evidence_sha256": report.evidence_sha256,
                "bytes": len(report.pdf),
                "verification_ok": context["verification"]["ok"],
            },
        )
    return report
