"""What goes into the compliance reports, read from the database in a few aggregate queries.
Each builder returns (template context, evidence) where the evidence is the machine-readable
record embedded in the PDF: for a version, exactly what the API gives, plus serving, seals and
the verification result."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from compliance import report_charts, report_tables
from compliance.evidence import verify_evidence
from compliance.lineage import build_lineage, lineage_svg
from core import audit
from core.actors import Actor
from core.canonical import ApiJSONEncoder
from core.models import AuditEvent
from governance import overlays, review
from governance import shadow as shadows
from governance.models import CheckKind, CheckRun, Decision, DecisionKind, Deployment, Finding, Policy
from governance.policies import active_policy
from governance.records import version_data
from lifecycle.models import ModelVersion, RiskTier
from lifecycle.records import kill_switch_record
from monitoring import charts as monitoring_charts
from monitoring import selectors as monitoring_selectors
from serving import seals as seal_service
from serving import selectors as serving_selectors
from serving.models import BatchJob, Disposition, LogSource, PredictionLog, PredictionSeal

MAX_SEALS_SHOWN = 40


def evidence_bytes(evidence: dict[str, Any]) -> bytes:
    """The evidence as the API would render it (same encoder, so dates read the same)."""
    return json.dumps(evidence, cls=ApiJSONEncoder, ensure_ascii=False, indent=2, sort_keys=True).encode()


def _svg_uri(svg: bytes | str) -> str:
    data = svg.encode() if isinstance(svg, str) else svg
    return "data:image/svg+xml;base64," + base64.b64encode(data).decode()


# Audit events that record someone reading the evidence (a report, a verification, an export, a
# report job): they change none of a report's inputs, so a report is as of the newest event that
# is not one of them, and rendering it again gives the same bytes (docs/decisions-incidents.md).
READING_ACTIONS = (
    audit.REPORT_GENERATED,
    audit.AUDIT_VERIFIED,
    audit.EXPORT_DOWNLOADED,
    audit.REPORT_JOB_STARTED,
    audit.REPORT_JOB_FINISHED,
)


@dataclass(frozen=True)
class Point:
    """A report's point in the audit trail: the newest event that is not a reading, and its time."""

    seq: int
    at: datetime | None


def report_point(*, before: datetime | None = None) -> Point:
    """The newest audit event that is not a reading (created before `before`, when given)."""
    events = AuditEvent.objects.exclude(action__in=READING_ACTIONS)
    if before is not None:
        events = events.filter(created_at__lt=before)
    row = events.order_by("-seq").values_list("seq", "created_at").first()
    return Point(*row) if row else Point(0, None)


def verification(seals: QuerySet[PredictionSeal] | None = None, *, point: Point | None = None) -> dict[str, Any]:
    """The audit chain, the prediction seals (all, or the given ones) and every evidence row
    (decisions, deployments, checks, policies, outcomes, roles) recomputed now. With a `point`,
    an intact chain is reported up to that event: the whole chain is checked, but the readings
    after the point (this report's own download among them) do not change the report's bytes."""
    chain = audit.verify_chain()
    sealed = seal_service.verify_seals(seals)
    rows = verify_evidence()
    checked, message = chain.events_checked, chain.message
    if point is not None and chain.ok:
        checked, message = point.seq, f"{point.seq} events verified, chain intact (up to event #{point.seq})"
    result = {
        "ok": chain.ok and sealed.ok and rows.ok,
        "chain": {"ok": chain.ok, "events_checked": checked, "message": message},
        "seals": {"ok": sealed.ok, "seals_checked": sealed.seals_checked, "message": sealed.message},
        "evidence": {"ok": rows.ok, "rows_checked": rows.rows_checked, "message": rows.message},
    }
    if point is not None:
        result["as_of"] = point.at
        result["as_of_event"] = point.seq
    return result


def _seal_row(seal: Any) -> dict[str, Any]:
    return {
        "seal": seal.pk,
        "root": seal.root,
        "tree_size": seal.tree_size,
        "first_record": seal.first_record,
        "last_record": seal.last_record,
        "audit_event_seq": seal.audit_seq,
        "created_at": seal.created_at,
    }


def _deployment_row(d: Deployment) -> dict[str, Any]:
    return {
        "version": d.version.version,
        "deployed_at": d.deployed_at,
        "deployed_by": d.deployed_by.username,
        "ended_at": d.ended_at,
        "ended_by": d.ended_by.username if d.ended_by else None,
        "end_reason": d.end_reason,
    }


CHECK_ORDER = {"validation": 0, "fairness": 1, "reproducibility": 2, "onnx": 3}


def _checks(version: ModelVersion) -> list[dict[str, Any]]:
    shown = sorted(review.checks_for_display(version), key=lambda item: CHECK_ORDER.get(item["check"].kind, 9))
    for item in shown:
        item["policy_rows"] = report_tables.in_pairs(report_tables.policy_rows(item["check"].policy or {}))
        for feature in item["features"]:
            feature["chart_uri"] = _svg_uri(report_charts.fairness_chart(feature))
    return shown


def _monitoring(version: ModelVersion) -> dict[str, Any]:
    """The version's monitoring for its report: the latest windows, every finding, the expiry
    and the recertifications (with the hash of the snapshot each one decided on)."""
    windows = list(monitoring_selectors.windows_of(version))[-30:]
    return {
        "approval_expires_at": version.approval_expires_at,
        "windows": [
            {
                **monitoring_selectors.window_data(w),
                "top_psi": sorted(
                    ((n, i.get("psi")) for n, i in w.drift.items() if i.get("psi") is not None), key=lambda t: -t[1]
                )[:3],
            }
            for w in windows
        ],
        "findings": [monitoring_selectors.finding_data(f) for f in monitoring_selectors.findings_of(version)],
        "recertifications": [
            {
                "by": d.actor_username,
                "at": d.created_at,
                "snapshot_sha256": d.snapshot_sha256,
                "expires_at": d.approval_expires_at,
                "justification": d.justification,
            }
            for d in Decision.objects.filter(version=version, kind=DecisionKind.RECERTIFY).order_by("created_at")
        ],
        "shadow": [
            {
                "window": [c.window_start, c.window_end],
                "champion_version": c.champion.version,
                "rows": c.rows,
                "agreement": c.agreement,
                "differences": c.differences,
                "n_outcomes": (c.performance or {}).get("n_outcomes", 0),
                "metrics": metrics,
            }
            for c, metrics in shadows.display(version)
        ],
        "batch_jobs": [
            {
                "id": str(j.public_id),
                "created_at": j.created_at,
                "caller": j.caller,
                "status": j.status,
                "rows": j.rows_total,
                "rows_failed": j.rows_failed,
                "input_sha256": j.input_sha256,
                "result_sha256": j.result_sha256,
            }
            for j in BatchJob.objects.filter(version=version).order_by("created_at")[:50]
        ],
    }


def version_report(version: ModelVersion, *, actor: Actor = None) -> tuple[dict, dict]:
    """(context, evidence) of a version's report, as of the newest audit event that is not a
    reading: no generation time or requester in it (the audit event of the download names them),
    so the same inputs give the same bytes."""
    point = report_point()
    now = point.at or timezone.now()  # (an empty trail: nothing to be the same as)
    api = version_data(version)
    deployments = [
        _deployment_row(d)
        for d in Deployment.objects.filter(registered_model=version.registered_model)
        .select_related("version", "deployed_by", "ended_by")
        .order_by("deployed_at", "pk")
    ]
    serving = serving_selectors.serving_summary(version_id=version.pk)
    covering = list(serving_selectors.seals_covering(version.pk))
    seals = [_seal_row(s) for s in covering]
    # the seals found once (their query reads every record of the version), then verified by id
    verified = verification(PredictionSeal.objects.filter(pk__in=[s.pk for s in covering]), point=point)
    graph = build_lineage([version])
    unsealed = version.predictions.filter(seal__isnull=True).count()
    monitoring = _monitoring(version)
    evidence = {
        "report": {
            "kind": "version",
            "as_of": point.at,
            "as_of_event": point.seq,
            "schema": "model-governance/version-report/1",
        },
        "version": api,
        "kill_switch": kill_switch_record(version.registered_model),
        "deployments": deployments,
        "serving": serving,
        "seals": seals,
        "unsealed_records": unsealed,
        "audit_verification": verified,
        "lineage_graph": graph.as_dict(),
        "monitoring": monitoring,
        "overlays": [overlays.overlay_data(o, at=now) for o in overlays.in_force(version.registered_model_id, at=now)],
    }
    onnx = next((c for c in api["checks"] if c["kind"] == CheckKind.ONNX), None)
    context = {
        "title": f"Compliance report: {version}",
        "v": version,
        "api": api,
        "card": version.card.sections(),
        "lineage_uri": _svg_uri(lineage_svg(graph, focus=f"version:{version.pk}")),
        "parents": version.lineage(),
        "checks": _checks(version),
        "decisions": review.decisions_for_display(version),
        "deployments": deployments,
        "serving": serving,
        "volume_uri": _svg_uri(report_charts.daily_volume_chart(serving["per_day"])) if serving["per_day"] else "",
        "seals": seals[:MAX_SEALS_SHOWN],
        "seals_more": max(0, len(seals) - MAX_SEALS_SHOWN),
        "unsealed": unsealed,
        "verification": verified,
        "onnx_sha256": (onnx or {}).get("metrics", {}).get("onnx_sha256", ""),
        "monitoring": monitoring,
        "overlays": list(overlays.in_force(version.registered_model_id, at=now)),
        "psi_uris": [
            _svg_uri(svg)
            for svg in monitoring_charts.psi_multiples(
                list(monitoring_selectors.windows_of(version))[-30:],
                warn=active_policy().psi_warn,
                alert=active_policy().psi_alert,
            )
        ],
        "as_of": point.at,
        "as_of_event": point.seq,
    }
    return context, evidence


PERIOD_ACTIONS = (
    audit.VERSION_APPROVED,
    audit.VERSION_REJECTED,
    audit.VERSION_CHANGES_REQUESTED,
    audit.VERSION_DEPLOYED,
    audit.MODEL_ROLLED_BACK,
    audit.VERSION_RETIRED,
    audit.POLICY_CHANGED,
)


def _decision_row(d: Decision) -> dict[str, Any]:
    return {
        "model": d.version.registered_model.name,
        "version": d.version.version,
        "kind": d.kind,
        "by": d.actor_username,
        "at": d.created_at,
        "justification": d.justification,
        "override": d.override,
        "artifact_sha256": d.artifact_sha256,
        "card_sha256": d.card_sha256,
        "checks_sha256": d.checks_sha256,
    }


def _waivers(*, since: datetime, until: datetime) -> dict[str, Any]:
    """The fairness waivers each policy grants now, and the fairness checks of the period that
    passed only because of one (no sensitive feature was assessed)."""
    return {
        "policies": [
            {"policy": p.name, "fairness_waived_tiers": [t for t in RiskTier.values if p.fairness_waived_for(t)]}
            for p in Policy.objects.order_by("name")
        ],
        "checks": [
            {
                "model": c.version.registered_model.name,
                "version": c.version.version,
                "round": c.round,
                "tier": c.metrics.get("tier", ""),
                "finished_at": c.finished_at,
                "waiver": c.metrics.get("waiver", ""),
            }
            for c in CheckRun.objects.filter(
                kind=CheckKind.FAIRNESS, finished_at__gte=since, finished_at__lt=until, metrics__waived=True
            )
            .select_related("version__registered_model")
            .order_by("finished_at", "pk")
        ],
    }


def _period_monitoring(*, since: datetime, until: datetime) -> dict[str, Any]:
    """Alerts raised, findings opened or closed, and recertifications in [since, until)."""
    alerts = [
        {
            "at": e.created_at,
            "version": e.target_repr,
            "kind": e.data.get("kind", ""),
            "subject": e.data.get("subject", ""),
            "message": e.data.get("message", ""),
            "finding": e.data.get("finding"),
        }
        for e in AuditEvent.objects.filter(
            action=audit.MONITORING_ALERT_RAISED, created_at__gte=since, created_at__lt=until
        ).order_by("seq")
    ]
    findings = [
        {**monitoring_selectors.finding_data(f), "version": str(f.version), "closed_by": f.closed_by_username}
        for f in Finding.objects.filter(
            Q(opened_at__gte=since, opened_at__lt=until) | Q(closed_at__gte=since, closed_at__lt=until)
        )
        .select_related("version__registered_model", "owner")
        .order_by("opened_at", "pk")
    ]
    recertifications = [
        {
            "at": d.created_at,
            "version": str(d.version),
            "by": d.actor_username,
            "snapshot_sha256": d.snapshot_sha256,
            "expires_at": d.approval_expires_at,
        }
        for d in Decision.objects.filter(kind=DecisionKind.RECERTIFY, created_at__gte=since, created_at__lt=until)
        .select_related("version__registered_model")
        .order_by("created_at", "pk")
    ]
    return {"alerts": alerts, "findings": findings, "recertifications": recertifications}


def _volumes(*, since: datetime, until: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Requests and rows per model and version in [since, until), from one GROUP BY: the traffic
    (requests, batch jobs, reported external decisions), and apart from it the shadow replays
    (production's logged inputs scored again by a challenger and answered to nobody)."""
    traffic: dict[tuple[str, int | None], dict[str, Any]] = {}
    shadow: dict[tuple[str, int | None], dict[str, Any]] = {}
    grouped = (
        PredictionLog.objects.filter(created_at__gte=since, created_at__lt=until)
        .order_by()
        .values("model_name", "version_number", "source")
        .annotate(
            requests=Count("id"),
            rows=Sum("n_rows", filter=Q(outcome=Disposition.OK)),
            refused=Count("id", filter=~Q(outcome=Disposition.OK)),
        )
    )
    for row in grouped:
        key = (row["model_name"], row["version_number"])
        into = shadow if row["source"] == LogSource.SHADOW else traffic
        entry = into.setdefault(
            key, {"model": key[0], "version": key[1], "requests": 0, "rows_predicted": 0, "refused": 0}
        )
        entry["requests"] += row["requests"]
        entry["rows_predicted"] += row["rows"] or 0
        entry["refused"] += row["refused"]

    def ordered(rows: dict[tuple[str, int | None], dict[str, Any]]) -> list[dict[str, Any]]:
        return [rows[k] for k in sorted(rows, key=lambda k: (k[0], k[1] is None, k[1] or 0))]

    return ordered(traffic), ordered(shadow)


def period_report(*, since: datetime, until: datetime, actor: Actor = None) -> tuple[dict, dict]:
    """(context, evidence) of the governance report of [since, until), as of the newest audit
    event before `until` that is not a reading: the same period and trail give the same bytes."""
    point = report_point(before=until)
    decisions = [
        _decision_row(d)
        for d in Decision.objects.filter(created_at__gte=since, created_at__lt=until)
        .select_related("version__registered_model")
        .order_by("created_at", "pk")
    ]
    policy_changes = [
        {
            "seq": e.seq,
            "at": e.created_at,
            "by": e.actor_username,
            "policy": e.data.get("policy", ""),
            "changes": e.data.get("changes", {}),
            "justification": e.data.get("justification", ""),  # (changes before the ledger had none)
        }
        for e in AuditEvent.objects.filter(
            action=audit.POLICY_CHANGED, created_at__gte=since, created_at__lt=until
        ).order_by("seq")
    ]
    deployments = [
        {"model": d.registered_model.name, **_deployment_row(d)}
        for d in Deployment.objects.filter(deployed_at__lt=until)
        .exclude(ended_at__lt=since)
        .select_related("registered_model", "version", "deployed_by", "ended_by")
        .order_by("deployed_at", "pk")
    ]
    volumes, shadow_volumes = _volumes(since=since, until=until)
    waivers = _waivers(since=since, until=until)
    monitoring = _period_monitoring(since=since, until=until)
    verified = verification(point=point)
    evidence = {
        "report": {
            "kind": "period",
            "since": since,
            "until": until,
            "as_of": point.at,
            "as_of_event": point.seq,
            "schema": "model-governance/period-report/1",
        },
        "decisions": decisions,
        "overrides": [d for d in decisions if d["override"]],
        "deployments": deployments,
        "policy_changes": policy_changes,
        "waivers": waivers,
        "prediction_volumes": volumes,
        "shadow_replays": shadow_volumes,
        "monitoring": monitoring,
        "audit_verification": verified,
    }
    last_day = until - timedelta(microseconds=1)  # `until` is excluded
    context = {
        "title": f"Governance report {since:%Y-%m-%d} to {last_day:%Y-%m-%d}",
        "since": since,
        "until": until,
        "last_day": last_day,
        "decisions": decisions,
        "overrides": evidence["overrides"],
        "deployments": deployments,
        "policy_changes": policy_changes,
        "waivers": waivers,
        "volumes": volumes,
        "shadow_volumes": shadow_volumes,
        "monitoring": monitoring,
        "verification": verified,
        "as_of": point.at,
        "as_of_event": point.seq,
    }
    return context, evidence
