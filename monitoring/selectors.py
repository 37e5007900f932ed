"""Reads of the monitoring evidence: what the API, the pages, the reports and a recertification
snapshot show of a version's monitoring."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from core.canonical import sha256_json
from governance.models import Finding
from lifecycle.models import ModelVersion
from monitoring.counts import inputs_of
from monitoring.models import MonitoringWindow
from monitoring.windows import compute, latest_outcomes
from serving import personal
from serving.models import DecisionReview, PredictionLog, PredictionOutcome, ReviewAction

DEFAULT_DAYS = 30


def windows_of(version: ModelVersion, *, since: datetime | None = None, until: datetime | None = None) -> QuerySet:
    windows = MonitoringWindow.objects.filter(version=version)
    if since is not None:
        windows = windows.filter(end__gt=since)
    if until is not None:
        windows = windows.filter(start__lt=until)
    return windows.order_by("start")


def open_findings(version: ModelVersion) -> QuerySet[Finding]:
    return Finding.objects.filter(version=version, closed_at__isnull=True).select_related("owner")


def findings_of(version: ModelVersion) -> QuerySet[Finding]:
    return Finding.objects.filter(version=version).select_related("owner").prefetch_related("comments")


def drift_view(items: dict[str, Any]) -> dict[str, Any]:
    """Per feature: psi, and for numeric features ks_statistic and ks_pvalue (the API's shape)."""
    keys = ("psi", "ks_statistic", "ks_pvalue", "level")
    return {name: {k: item[k] for k in keys if k in item} for name, item in items.items()}


def window_data(window: MonitoringWindow) -> dict[str, Any]:
    return {
        "id": window.pk,
        "start": window.start,
        "end": window.end,
        "rows": window.rows,
        "level": window.level,
        "drift": drift_view(window.drift),
        "prediction_drift": drift_view({"__prediction__": window.prediction_drift}).get("__prediction__", {}),
        "performance": window.performance,
        "alerts": window.alerts,
    }


def finding_data(finding: Finding) -> dict[str, Any]:
    return {
        "id": finding.pk,
        "severity": finding.severity,
        "title": finding.title,
        "status": "open" if finding.is_open else "closed",
        "owner": finding.owner.get_username() if finding.owner else None,
        "opened_at": finding.opened_at,
        "due_at": finding.due_at,
        "source": finding.source,
        "closed_at": finding.closed_at,
    }


def monitoring_over(version: ModelVersion, *, since: datetime | None, until: datetime | None) -> dict[str, Any]:
    """The API's answer: monitoring over [since, until) computed now from everything logged (sealed
    or not), plus the stored windows in that range with their alerts."""
    until = until or timezone.now()
    since = since or until - timedelta(days=DEFAULT_DAYS)
    result = compute(version, since, until)
    body: dict[str, Any] = {
        "model": version.registered_model.name,
        "version": version.version,
        "since": since,
        "until": until,
        "profile": bool(result),
    }
    if result is None:
        body["message"] = "This version has no reference profile (approved before profiles existed): no drift."
        result_fields: dict[str, Any] = {"rows": 0, "drift": {}, "prediction_drift": {}, "performance": {}}
        body.update(result_fields, fairness={}, alerts=[])
    else:
        body.update(
            rows=result.rows,
            ks_rows=result.ks_rows,
            drift=drift_view(result.drift),
            prediction_drift=drift_view({"p": result.prediction_drift}).get("p", {}),
            performance=result.performance,
            fairness=result.fairness,
            alerts=result.alerts,
        )
    body["windows"] = [window_data(w) for w in windows_of(version, since=since, until=until)]
    body["open_findings"] = [finding_data(f) for f in open_findings(version)]
    return body


def recertification_snapshot(version: ModelVersion, *, windows: int = 30) -> dict[str, Any]:
    """The frozen evidence a recertification decides on: the latest stored windows (with their
    content hashes) and every open finding, as of now."""
    latest = list(MonitoringWindow.objects.filter(version=version).order_by("-start")[:windows])
    return {
        "version": f"{version.registered_model.name} v{version.version}",
        "taken_at": timezone.now(),
        "windows": [{**window_data(w), "sha256": sha256_json(window_data(w))} for w in reversed(latest)],
        "open_findings": [finding_data(f) for f in open_findings(version)],
    }


def override_rates(version: ModelVersion, *, windows: list[MonitoringWindow] | None = None) -> dict[str, Any]:
    """How often people override the version's automated decisions (AI Act art. 14): over every
    reviewed row (its latest review counts), per stored window (by the decision's time) and per
    group of each sensitive feature (from the logged inputs, or the attributes sent with the
    outcome), so an override pattern that clusters in one group is visible."""
    latest: dict[tuple[int, int], tuple[bool, datetime]] = {}
    reviews = DecisionReview.objects.filter(record__version=version).order_by("record_id", "row", "seq")
    for record_id, row, action, decided_at in reviews.values_list("record_id", "row", "action", "record__created_at"):
        latest[(record_id, row)] = (action == ReviewAction.OVERRIDDEN, decided_at)

    def rate(items: list[bool]) -> dict[str, Any]:
        n, k = len(items), sum(items)
        return {"reviewed": n, "overridden": k, "rate": k / n if n else None}

    result: dict[str, Any] = {**rate([o for o, _ in latest.values()]), "windows": [], "groups": {}}
    for window in windows or []:
        inside = [o for o, at in latest.values() if window.start <= at < window.end]
        if inside:
            result["windows"].append({"start": window.start, "end": window.end, **rate(inside)})
    features = list(version.sensitive_features or [])
    if not latest or not features:
        return result
    record_ids = sorted({record_id for record_id, _ in latest})
    inputs = {
        pk: inputs_of(public_id, text)
        for pk, text, public_id in PredictionLog.objects.filter(pk__in=record_ids).values_list(
            "pk", "inputs_json", "public_id"
        )
    }
    sent = {
        (record_id, row): personal.open_attributes(public_id, row, sensitive)
        for record_id, public_id, row, sensitive in latest_outcomes(
            PredictionOutcome.objects.filter(record_id__in=record_ids).values_list(
                "record_id", "record__public_id", "row", "sensitive", "seq"
            )
        )
    }
    parsed: dict[int, Any] = {}
    for feature in features:
        groups: dict[str, list[bool]] = {}
        for (record_id, row), (overridden, _) in latest.items():
            if record_id not in parsed:
                parsed[record_id] = inputs.get(record_id) or []
            rows = parsed[record_id]
            logged = rows[row] if row < len(rows) and isinstance(rows[row], dict) else {}
            value = sent.get((record_id, row), {}).get(feature, logged.get(feature))
            groups.setdefault("(unknown)" if value is None else str(value), []).append(overridden)
        result["groups"][feature] = [{"group": g, **rate(items)} for g, items in sorted(groups.items())]
    return result
