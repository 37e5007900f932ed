"""Business KPIs per model, computed from the decisions logged for the model
(its answers, or a vendor model's reported decisions) and their reported outcomes:

- `approval_rate`: the share of logged decisions that are the favourable one;
- `default_rate_among_approved`: among favourable decisions whose outcome was reported, the share
  whose outcome is not favourable (the applicant approved who defaulted).

A KPI outside its bounds over its window, with at least `min_rows` rows, opens a medium finding
(key "kpi:<name>") on the model's production version (else its latest one), through
governance.findings; a risk officer may open a retraining request from it (governance.retraining)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson
from django.db import transaction
from django.utils import timezone

from core import audit
from core.actors import Actor, username_of
from core.roles import RISK_OFFICERS, has_role
from governance import findings
from governance.models import Severity
from lifecycle.errors import Forbidden, SubmissionInvalid
from lifecycle.models import ModelVersion, RegisteredModel, Status
from monitoring.models import KpiDefinition, KpiMetric
from serving.models import Disposition, LogSource, PredictionLog, PredictionOutcome


@transaction.atomic
def define_kpi(model_id: int, *, actor: Actor, **fields: Any) -> KpiDefinition:
    """Define a KPI of a model (risk officers)."""
    if not has_role(actor, RISK_OFFICERS):
        raise Forbidden("Only risk officers define KPIs.")
    model = RegisteredModel.objects.get(pk=model_id)
    errors: dict[str, list[str]] = {}
    name = fields.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        errors["name"] = ["A short name (letters, digits, hyphens)."]
    elif KpiDefinition.objects.filter(registered_model=model, name=name).exists():
        errors["name"] = [f"{model.name} has a KPI named {name!r} already."]
    if fields.get("metric") not in KpiMetric.values:
        errors["metric"] = [f"Choose one of {', '.join(KpiMetric.values)}."]
    if "favourable" not in fields or fields["favourable"] is None:
        errors["favourable"] = ['Give the favourable decision, e.g. 1 or "good".']
    bounds = {k: fields.get(k) for k in ("min_value", "max_value")}
    for key, value in bounds.items():
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1
        ):
            errors[key] = ["A rate between 0 and 1."]
    if bounds["min_value"] is None and bounds["max_value"] is None:
        errors["min_value"] = ["Give a lower or an upper bound (or both)."]
    extra = {}
    for key, default in (("min_rows", 30), ("window_days", 30)):
        value = fields.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000:
            errors[key] = ["A whole number from 1."]
        extra[key] = value
    if errors:
        raise SubmissionInvalid(errors)
    kpi = KpiDefinition.objects.create(
        registered_model=model,
        name=(name or "").strip(),
        metric=fields["metric"],
        favourable=fields["favourable"],
        **bounds,
        **extra,
        created_by_username=username_of(actor),
        created_at=timezone.now(),
    )
    audit.record(audit.KPI_DEFINED, actor=actor, target=kpi, data={"model": model.name, "name": kpi.name})
    return kpi


def compute(kpi: KpiDefinition, *, since: datetime, until: datetime) -> dict[str, Any]:
    """The KPI's value over [since, until), its row count and whether it breaches its bounds."""
    records = PredictionLog.objects.filter(
        model_name=kpi.registered_model.name, outcome=Disposition.OK, created_at__gte=since, created_at__lt=until
    ).exclude(source=LogSource.SHADOW)
    favourable = kpi.favourable
    if kpi.metric == KpiMetric.APPROVAL_RATE:
        rows = approved = 0
        for outputs_json in records.values_list("outputs_json", flat=True).iterator(chunk_size=2000):
            decisions = orjson.loads(outputs_json).get("predictions") or []
            rows += len(decisions)
            approved += sum(1 for d in decisions if d == favourable)
        value = approved / rows if rows else None
    else:
        rows = defaulted = 0
        outcomes = PredictionOutcome.objects.filter(record__in=records).values_list(
            "record__outputs_json", "row", "actual"
        )
        for outputs_json, row, actual in outcomes.iterator(chunk_size=2000):
            decisions = orjson.loads(outputs_json).get("predictions") or []
            if row < len(decisions) and decisions[row] == favourable:
                rows += 1
                defaulted += actual != favourable
        value = defaulted / rows if rows else None
    breach = ""
    if value is not None and rows >= kpi.min_rows:
        if kpi.min_value is not None and value < kpi.min_value:
            breach = f"{kpi.name} {value:.4f} < {kpi.min_value}"
        elif kpi.max_value is not None and value > kpi.max_value:
            breach = f"{kpi.name} {value:.4f} > {kpi.max_value}"
    return {
        "name": kpi.name,
        "metric": kpi.metric,
        "value": value,
        "rows": rows,
        "min_value": kpi.min_value,
        "max_value": kpi.max_value,
        "min_rows": kpi.min_rows,
        "since": since,
        "until": until,
        "breach": breach,
    }


def _finding_version(model: RegisteredModel) -> ModelVersion | None:
    versions = model.versions.order_by("-version")
    return versions.filter(status=Status.PRODUCTION).first() or versions.first()


def check_kpis(*, model_name: str | None = None, now: datetime | None = None) -> list[int]:
    """Compute every KPI over its window ending now; a breach opens (or joins) a finding."""
    until = now or timezone.now()
    opened = []
    kpis = KpiDefinition.objects.select_related("registered_model")
    if model_name:
        kpis = kpis.filter(registered_model__name=model_name)
    for kpi in kpis:
        result = compute(kpi, since=until - timedelta(days=kpi.window_days), until=until)
        version = _finding_version(kpi.registered_model)
        if not result["breach"] or version is None:
            continue
        finding, _ = findings.open_finding(
            version_id=version.pk,
            key=f"kpi:{kpi.name}",
            severity=Severity.MEDIUM,
            title=f"KPI breached: {result['breach']} over {result['rows']} rows",
            description=f"{kpi.get_metric_display()} over the {kpi.window_days} days to {until:%Y-%m-%d %H:%M} UTC.",
            source=f"kpi {kpi.name}",
            window=(result["since"], until),
        )
        opened.append(finding.pk)
    return opened
