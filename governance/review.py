"""What a reviewer (or the data scientist) sees about a version: its checks with charts, its
decisions with void flags and the metric diff against production (the actions it allows come
from governance.rules). Reads only."""

from __future__ import annotations

from typing import Any

from django.utils.safestring import mark_safe

from core.metric_names import with_labels
from governance import bindings, charts
from governance.models import CheckKind, CheckRun, CheckStatus, Decision, DecisionKind
from lifecycle.models import ModelVersion, Status

# Failures first: what a reviewer must read before anything else.
STATUS_ORDER = {"error": 0, "failed": 1, "inconclusive": 2, "running": 3, "queued": 4, "passed": 5}


def finding_of(check: CheckRun) -> str:
    """The check's result in one line, in words (metric names, not identifiers)."""
    metrics = check.metrics or {}
    violations = [f"{f['feature']}: {v}" for f in metrics.get("features", []) for v in f.get("violations") or []]
    parts = [check.error, *metrics.get("failures", []), *violations, check.warning]
    text = "; ".join(p for p in parts if p)
    if not text:
        text = "within policy" if check.status == CheckStatus.PASSED else check.get_status_display().lower()
    return with_labels(text)


def checks_for_display(version: ModelVersion) -> list[dict[str, Any]]:
    shown = []
    runs = CheckRun.objects.filter(version=version, round=version.review_round)
    for check in sorted(runs, key=lambda c: (STATUS_ORDER.get(c.status, 9), c.kind)):
        features = check.metrics.get("features", []) if check.kind == CheckKind.FAIRNESS else []
        shown.append(
            {
                "check": check,
                "features": [
                    {
                        **f,
                        "chart": mark_safe(charts.group_bar_chart(f)),  # noqa: S308 (labels escaped inside)
                        "metric_names": list(next(iter(f["groups"].values()), {}).keys()),
                    }
                    for f in features
                ],
                "agreement_pct": (round(check.metrics["agreement"] * 100, 1) if "agreement" in check.metrics else None),
                "validation": check.metrics.get("metrics", {}) if check.kind == CheckKind.VALIDATION else {},
                "finding": finding_of(check),
            }
        )
    return shown


def decisions_for_display(version: ModelVersion) -> list[dict[str, Any]]:
    bound = bindings.current(version)
    rows = []
    for decision in Decision.objects.filter(version=version).order_by("created_at", "pk"):
        void = decision.kind == DecisionKind.APPROVE and (
            decision.round != version.review_round or bindings.is_void(decision, bound)
        )
        rows.append({"decision": decision, "void": void})
    return rows


def metric_diff(version: ModelVersion) -> list[dict[str, Any]]:
    """Validation and fairness headline numbers of this version beside the production version's."""
    production = (
        ModelVersion.objects.filter(registered_model=version.registered_model, status=Status.PRODUCTION)
        .exclude(pk=version.pk)
        .first()
    )
    if production is None:
        return []

    def numbers(v: ModelVersion) -> dict[str, float]:
        out: dict[str, float] = {}
        for check in CheckRun.objects.filter(version=v, round=v.review_round):
            if check.kind == CheckKind.VALIDATION:
                out.update(check.metrics.get("metrics", {}))
            if check.kind == CheckKind.FAIRNESS:
                for f in check.metrics.get("features", []):
                    for name, value in (f.get("headline") or {}).items():
                        if value is not None:
                            out[f"{f['feature']}: {name}"] = value
        return out

    mine, theirs = numbers(version), numbers(production)
    return [
        {
            "metric": key,
            "this": mine.get(key),
            "production": theirs.get(key),
            "delta": (mine[key] - theirs[key]) if key in mine and key in theirs else None,
            "production_version": production.version,
        }
        for key in sorted(set(mine) | set(theirs))
    ]


def needs_override(version: ModelVersion) -> list[CheckRun]:
    """The failing gating checks an approval would override (empty: no override needed)."""
    return bindings.failing_checks(version)
