"""Fairness metrics with fairlearn: arrays in, a plain result out (no database, no Django).

For each sensitive feature, and for their intersection when there are several, it computes
MetricFrame per-group metrics and the headline disparities. Missing values in a sensitive
column form their own group; groups smaller than `min_group_size` are reported but excluded
from the headline numbers, and the result says so."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score, mean_absolute_error

MISSING_GROUP = "(missing)"
INTERSECTION_SEPARATOR = " × "


@dataclass(frozen=True)
class Thresholds:
    max_difference: float = 0.10
    min_ratio: float = 0.80
    min_group_size: int = 30


@dataclass
class FeatureFairness:
    feature: str
    groups: dict[str, dict[str, float]]
    excluded_groups: list[str]
    headline: dict[str, float | None]
    violations: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.violations


@dataclass
class FairnessResult:
    task: str
    positive_label: Any
    features: list[FeatureFairness]
    notes: list[str]

    @property
    def passed(self) -> bool:
        return all(f.passed for f in self.features)

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "positive_label": self.positive_label,
            "passed": self.passed,
            "notes": self.notes,
            "features": [{**asdict(f), "passed": f.passed} for f in self.features],
        }


def group_labels(column: pd.Series) -> pd.Series:
    """Group names as strings; missing values are a group of their own."""
    labels = column.astype(object).where(column.notna(), MISSING_GROUP)
    return labels.map(str)


def intersection(frame: pd.DataFrame, features: list[str]) -> pd.Series:
    parts = [group_labels(frame[f]) for f in features]
    combined = parts[0]
    for part in parts[1:]:
        combined = combined + INTERSECTION_SEPARATOR + part
    return combined


def _clean(value: Any) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def _per_group(frame: MetricFrame) -> dict[str, dict[str, float]]:
    table = frame.by_group
    return {
        str(group): {metric: _clean(table.loc[group, metric]) for metric in table.columns}  # type: ignore[misc]
        for group in table.index
    }


def assess_feature(
    name: str,
    groups: pd.Series,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    task: str,
    positive_label: Any,
    thresholds: Thresholds,
) -> FeatureFairness:
    groups = groups.reset_index(drop=True)
    if task == "classification":
        binary_true = (np.asarray(y_true) == positive_label).astype(int)
        binary_pred = (np.asarray(y_pred) == positive_label).astype(int)
        metrics = {
            "count": count,
            "selection_rate": selection_rate,
            "accuracy": accuracy_score,
            "true_positive_rate": true_positive_rate,
            "false_positive_rate": false_positive_rate,
        }
        frame = MetricFrame(metrics=metrics, y_true=binary_true, y_pred=binary_pred, sensitive_features=groups)
    else:
        metrics = {"count": count, "mean_prediction": _mean_prediction, "mean_absolute_error": mean_absolute_error}
        frame = MetricFrame(metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=groups)
    per_group = _per_group(frame)
    sizes = groups.value_counts()
    excluded = sorted(str(g) for g, n in sizes.items() if n < thresholds.min_group_size)
    keep = ~groups.isin(excluded).to_numpy()
    headline: dict[str, float | None] = {}
    violations: list[str] = []
    if task == "classification" and groups[keep].nunique() >= 2:
        t, p, g = binary_true[keep], binary_pred[keep], groups[keep]
        headline = {
            "demographic_parity_difference": _clean(demographic_parity_difference(t, p, sensitive_features=g)),
            "demographic_parity_ratio": _clean(demographic_parity_ratio(t, p, sensitive_features=g)),
            "equalized_odds_difference": _clean(equalized_odds_difference(t, p, sensitive_features=g)),
            "equalized_odds_ratio": _clean(equalized_odds_ratio(t, p, sensitive_features=g)),
        }
        for metric, value in headline.items():
            if value is None:
                continue
            if metric.endswith("_difference") and value > thresholds.max_difference:
                violations.append(f"{metric} {value:.4f} > {thresholds.max_difference}")
            if metric.endswith("_ratio") and value < thresholds.min_ratio:
                violations.append(f"{metric} {value:.4f} < {thresholds.min_ratio}")
    elif task == "regression" and groups[keep].nunique() >= 2:
        kept = frame.by_group.loc[[g for g in frame.by_group.index if str(g) not in excluded]]
        headline = {
            "mean_prediction_difference": _clean(kept["mean_prediction"].max() - kept["mean_prediction"].min()),
            "mean_absolute_error_difference": _clean(
                kept["mean_absolute_error"].max() - kept["mean_absolute_error"].min()
            ),
        }
    return FeatureFairness(
        feature=name, groups=per_group, excluded_groups=excluded, headline=headline, violations=violations
    )


def _mean_prediction(y_true: Any, y_pred: Any) -> float:
    return float(np.mean(y_pred))


def assess(
    frame: pd.DataFrame,
    sensitive_features: list[str],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    task: str,
    classes: list[Any],
    thresholds: Thresholds,
) -> FairnessResult:
    """Fairness for each sensitive feature and for their intersection."""
    notes: list[str] = []
    positive_label = None
    if task == "classification":
        positive_label = 1 if 1 in classes else (classes[-1] if classes else None)
        if len(classes) > 2:
            notes.append(f"Multi-class model: disparities are computed one-vs-rest for class {positive_label!r}.")
    columns: list[tuple[str, pd.Series]] = [(f, group_labels(frame[f])) for f in sensitive_features]
    if len(sensitive_features) > 1:
        columns.append((INTERSECTION_SEPARATOR.join(sensitive_features), intersection(frame, sensitive_features)))
    results = [
        assess_feature(name, groups, y_true, y_pred, task=task, positive_label=positive_label, thresholds=thresholds)
        for name, groups in columns
    ]
    for result in results:
        if result.excluded_groups:
            notes.append(
                f"{result.feature}: group(s) {', '.join(result.excluded_groups)} have fewer than "
                f"{thresholds.min_group_size} rows; they are shown but excluded from the headline numbers."
            )
        if not result.headline:
            notes.append(f"{result.feature}: fewer than two groups large enough to compare; no headline numbers.")
    if not sensitive_features:
        notes.append("No sensitive features were named for this version.")
    return FairnessResult(task=task, positive_label=positive_label, features=results, notes=notes)
