"""A monitoring window computed from everything logged now: drift (PSI on the counts, KS on a
sample of at most MONITOR_KS_MAX_ROWS rows), live performance and live fairness over the
reported outcomes, and the alerts their breaches raise."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd
from django.conf import settings

from governance import fairness, profile
from governance.models import Severity
from governance.policies import active_policy
from lifecycle.models import ModelVersion, Task
from monitoring import drift
from monitoring.counts import (
    Rows,
    answers_given,
    inputs_of,
    prediction_of,
    window_counts,
)
from monitoring.models import Level
from monitoring.reference import Reference, reference_of, reference_sample
from serving import personal
from serving.models import PredictionLog, PredictionOutcome


def ks_sample(reference: Reference, start: datetime, end: datetime) -> Rows:
    """The window's rows KS is computed over: all of them up to MONITOR_KS_MAX_ROWS, else every
    k-th record in time order (whole records, so each row is taken with its neighbours)."""
    cap = settings.MONITOR_KS_MAX_ROWS
    records = answers_given(
        PredictionLog.objects.filter(version_id=reference.version_id, created_at__gte=start, created_at__lt=end)
    ).order_by("created_at", "pk")
    sizes = list(records.values_list("pk", "n_rows"))
    total = sum(n for _, n in sizes)
    step = max(1, math.ceil(total / cap)) if cap else 1
    chosen = [pk for i, (pk, _) in enumerate(sizes) if i % step == 0]
    rows = Rows()
    for start_at in range(0, len(chosen), 2000):
        # the window's bounds again: on PostgreSQL only its months' partitions are read
        part = PredictionLog.objects.filter(
            pk__in=chosen[start_at : start_at + 2000], created_at__gte=start, created_at__lt=end
        ).order_by("created_at", "pk")
        for inputs_json, outputs_json, public_id in part.values_list("inputs_json", "outputs_json", "public_id"):
            rows.add(inputs_of(public_id, inputs_json), orjson.loads(outputs_json), reference)
    return rows


def drift_between(
    version: ModelVersion, reference: Reference, start: datetime, end: datetime, thresholds: drift.Thresholds
) -> tuple[int, dict[str, Any], dict[str, Any], int]:
    """(rows, drift per input feature, drift of the prediction, rows KS used)."""
    rows, counts = window_counts(reference, start, end)
    sample = ks_sample(reference, start, end) if rows else Rows()
    cache: dict[str, pd.DataFrame] = {}
    result: dict[str, Any] = {}
    for name, entry in reference.profile["features"].items():
        current = counts.get(name, [0] * len(entry["counts"]))
        value = drift.psi(entry["counts"], current) if rows else None
        item: dict[str, Any] = {
            "kind": entry["kind"],
            "psi": value,
            "reference_counts": entry["counts"],
            "counts": current,
        }
        tested = shift = None
        if entry["kind"] == "numeric" and rows:
            ref_values = reference_sample(version, name, entry, cache)
            values = sample.predictions if name == profile.PREDICTION else sample.columns.get(name, [])
            tested = drift.ks(ref_values, profile.numeric_values(values)) if ref_values.size else None
            item["ks_statistic"], item["ks_pvalue"] = tested if tested else (None, None)
        elif rows:
            shift = drift.category_shift(entry["counts"], current)
            item["category_shift"], item["chi2_pvalue"] = shift if shift else (None, None)
        item["level"] = drift.level_of(value, rows, thresholds, ks=tested, category=shift)
        result[name] = item
    prediction = result.pop(profile.PREDICTION, {})
    return rows, result, prediction, sample.n


def latest_outcomes(rows: Any) -> list[tuple[Any, ...]]:
    """Of (record_id, ..., row, ..., seq) tuples, the latest correction of each predicted row
    (without its seq): a corrected outcome counts once, as corrected."""
    latest: dict[tuple[Any, Any], tuple[Any, ...]] = {}
    for item in rows:
        key = (item[0], item[2])
        if key not in latest or item[-1] > latest[key][-1]:
            latest[key] = tuple(item)
    return [item[:-1] for item in latest.values()]


def outcome_rows(version: ModelVersion, start: datetime, end: datetime) -> pd.DataFrame:
    """One row per reported outcome of the window's predictions: actual, predicted, score, the
    sensitive attributes (inputs, or sent with the outcome)."""
    outcomes = latest_outcomes(
        PredictionOutcome.objects.filter(
            record__version=version, record__created_at__gte=start, record__created_at__lt=end
        ).values_list("record_id", "record__public_id", "row", "actual", "sensitive", "seq")
    )
    by_record: dict[int, list[tuple[int, Any, dict]]] = defaultdict(list)
    for record_id, public_id, row, actual, sensitive in outcomes:
        by_record[record_id].append((row, actual, personal.open_attributes(public_id, row, sensitive)))
    reference = Reference(version.pk, {}, "", {}, version.task, list(version.classes or []))
    items = []
    wanted = set(version.sensitive_features)
    for record_id, inputs_json, outputs_json, public_id in PredictionLog.objects.filter(
        pk__in=list(by_record), created_at__gte=start, created_at__lt=end
    ).values_list("pk", "inputs_json", "outputs_json", "public_id"):
        inputs, outputs = inputs_of(public_id, inputs_json), orjson.loads(outputs_json)
        labels = outputs.get("predictions") or []
        probabilities = outputs.get("probabilities")
        scores = prediction_of(outputs, reference, len(labels)) if probabilities is not None else None
        for row, actual, sensitive in by_record[record_id]:
            if row >= len(labels):
                continue
            item = {"actual": actual, "predicted": labels[row], "score": scores[row] if scores else None}
            source = inputs[row] if row < len(inputs) and isinstance(inputs[row], dict) else {}
            for name in wanted:
                item[name] = sensitive.get(name, source.get(name))
            items.append(item)
    return pd.DataFrame(items, columns=["actual", "predicted", "score", *sorted(wanted)])


def live_performance(version: ModelVersion, frame: pd.DataFrame) -> dict[str, Any]:
    binary = version.task == Task.CLASSIFICATION and len(version.classes or []) == 2
    has_scores = binary and len(frame) and frame["score"].notna().all()
    return drift.performance(
        task=version.task,
        classes=list(version.classes or []),
        y_true=frame["actual"].tolist(),
        y_pred=frame["predicted"].tolist(),
        score=frame["score"].astype(float).tolist() if has_scores else None,
    )


def live_fairness(version: ModelVersion, frame: pd.DataFrame, policy: dict[str, Any]) -> dict[str, Any]:
    """The fairness check's headline metrics over the outcome-joined rows (groups smaller than the
    policy's minimum size are reported but not compared)."""
    if not version.sensitive_features or frame.empty:
        return {}
    kind = None if version.task == Task.CLASSIFICATION else float
    y_true = np.asarray(frame["actual"].tolist(), dtype=kind)
    y_pred = np.asarray(frame["predicted"].tolist(), dtype=kind)
    result = fairness.assess(
        frame,
        version.sensitive_features,
        y_true,
        y_pred,
        task=version.task,
        classes=list(version.classes or []),
        thresholds=fairness.Thresholds(
            max_difference=policy["max_fairness_difference"],
            min_ratio=policy["min_fairness_ratio"],
            min_group_size=policy["min_group_size"],
        ),
    )
    return result.as_dict()


@dataclass
class Result:
    """A window computed (stored or on demand)."""

    start: datetime
    end: datetime
    rows: int
    ks_rows: int
    profile_sha256: str
    drift: dict[str, Any]
    prediction_drift: dict[str, Any]
    performance: dict[str, Any]
    fairness: dict[str, Any]
    alerts: list[dict[str, Any]]

    @property
    def level(self) -> str:
        levels = {a["level"] for a in self.alerts}
        return Level.ALERT if "alert" in levels else Level.WARN if "warn" in levels else Level.OK


def compute(version: ModelVersion, start: datetime, end: datetime) -> Result | None:
    """Monitoring of `version` over [start, end) from everything logged now (None: no profile)."""
    reference = reference_of(version)
    if reference is None:
        return None
    policy = active_policy().values()
    thresholds = drift.Thresholds(
        psi_warn=float(policy["psi_warn"] or 0.10),
        psi_alert=float(policy["psi_alert"] or 0.25),
        min_rows=int(policy["monitor_min_rows"] or 0),
        max_pvalue=float(policy["drift_max_pvalue"] or 0.001),
        min_ks_statistic=float(policy["drift_min_ks_statistic"] or 0.05),
        min_category_shift=float(policy["drift_min_category_shift"] or 0.05),
    )
    rows, features, prediction, ks_rows = drift_between(version, reference, start, end, thresholds)
    frame = outcome_rows(version, start, end)
    perf = live_performance(version, frame)
    fair = live_fairness(version, frame, policy)
    alerts = _drift_alerts(features, prediction, thresholds)
    alerts += [{**b, "level": "alert", "severity": Severity.HIGH} for b in drift.performance_breaches(perf, policy)]
    alerts += _fairness_alerts(fair)
    return Result(start, end, rows, ks_rows, reference.sha256, features, prediction, perf, fair, alerts)


def _drift_alerts(features: dict[str, Any], prediction: dict[str, Any], thresholds: drift.Thresholds) -> list[dict]:
    alerts = []
    for name, item in [*features.items(), *([(profile.PREDICTION, prediction)] if prediction else [])]:
        if item["level"] == Level.OK:
            continue
        bound = thresholds.psi_alert if item["level"] == Level.ALERT else thresholds.psi_warn
        alerts.append(
            {
                "kind": "drift",
                "subject": name,
                "value": item["psi"],
                "threshold": bound,
                "level": item["level"],
                "severity": Severity.MEDIUM,
                "message": f"PSI of {name} is {item['psi']:.3f} (policy: {bound}).",
            }
        )
    return alerts


def _fairness_alerts(fair: dict[str, Any]) -> list[dict]:
    alerts = []
    for feature in fair.get("features", []):
        if feature.get("violations"):
            alerts.append(
                {
                    "kind": "fairness",
                    "subject": feature["feature"],
                    "value": feature.get("headline"),
                    "threshold": None,
                    "level": "alert",
                    "severity": Severity.HIGH,
                    "message": f"Live fairness on {feature['feature']}: " + "; ".join(feature["violations"]),
                }
            )
    return alerts
