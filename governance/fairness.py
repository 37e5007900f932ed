"""Fairness metrics with fairlearn: arrays in, a plain result out (no database, no Django).

For each sensitive feature, and for their intersection when there are several, it computes
MetricFrame per-group metrics and the headline disparities. Missing values in a sensitive
column form their own group; groups smaller than `min_group_size` are reported but excluded
from the headline numbers, and the result says so.

No verdict passes for lack of evidence: no sensitive feature is `failed`, and a feature with
fewer than two groups of `min_group_size` rows is `inconclusive`. Regression compares the
per-group MAE: smallest / largest >= min_ratio, and (largest - smallest) in standard deviations
of the label <= max_difference (an absolute MAE gap has the label's units, not a rate's)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from fairlearn.metrics import MetricFrame

MISSING_GROUP = "(missing)"
INTERSECTION_SEPARATOR = " × "
PASSED, FAILED, INCONCLUSIVE = "passed", "failed", "inconclusive"
REGRESSION_RATIO = "mean_absolute_error_ratio"
REGRESSION_SCALED_DIFFERENCE = "mean_absolute_error_difference_in_label_sd"


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
    # The headline numbers held against the policy (the others are shown for context).
    compared: list[str] = field(default_factory=list)
    # Fewer than two groups of min_group_size rows, a compared number undefined (0/0), or a group
    # below min_group_size that no officer waived: no verdict.
    inconclusive: bool = False
    # Groups of a declared feature below min_group_size (excluded from the headline numbers): each
    # makes the feature inconclusive unless waived ({group: the officer's justification}).
    small_groups: list[str] = field(default_factory=list)
    waived_groups: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return FAILED if self.violations else INCONCLUSIVE if self.inconclusive else PASSED

    @property
    def passed(self) -> bool:
        return self.status == PASSED


@dataclass
class FairnessResult:
    task: str
    positive_label: Any
    features: list[FeatureFairness]
    notes: list[str]

    @property
    def status(self) -> str:
        """failed when no feature was assessed or one is outside the thresholds; inconclusive
        when one could not be measured; passed only with evidence for every feature."""
        statuses = {f.status for f in self.features}
        if not self.features or FAILED in statuses:
            return FAILED
        return INCONCLUSIVE if INCONCLUSIVE in statuses else PASSED

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "positive_label": self.positive_label,
            "status": self.status,
            "passed": self.passed,
            "notes": self.notes,
            "features": [{**asdict(f), "status": f.status, "passed": f.passed} for f in self.features],
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
    waived: dict[str, str] | None = None,
    small_groups_count: bool = True,
) -> FeatureFairness:
    """One feature's per-group metrics and headline disparities. With `small_groups_count`, a
    group below min_group_size that `waived` does not name makes the feature inconclusive."""
    # fairlearn and scikit-learn are imported when fairness is measured (a check, a monitoring
    # window), not by every process that starts Django
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
    compared: list[str] = []
    measurable = groups[keep].nunique() >= 2
    if task == "classification" and measurable:
        t, p, g = binary_true[keep], binary_pred[keep], groups[keep]
        headline = {
            "demographic_parity_difference": _clean(demographic_parity_difference(t, p, sensitive_features=g)),
            "demographic_parity_ratio": _clean(demographic_parity_ratio(t, p, sensitive_features=g)),
            "equalized_odds_difference": _clean(equalized_odds_difference(t, p, sensitive_features=g)),
            "equalized_odds_ratio": _clean(equalized_odds_ratio(t, p, sensitive_features=g)),
        }
        compared = list(headline)
    elif task == "regression" and measurable:
        kept = frame.by_group.loc[[g for g in frame.by_group.index if str(g) not in excluded]]
        headline = {
            "mean_prediction_difference": _clean(kept["mean_prediction"].max() - kept["mean_prediction"].min()),
            **_regression_headline(np.asarray(y_true)[keep], np.asarray(y_pred)[keep], groups[keep], y_true),
        }
        compared = [REGRESSION_RATIO, REGRESSION_SCALED_DIFFERENCE]
    undefined = [m for m in compared if headline.get(m) is None]
    for metric in compared:
        value = headline.get(metric)
        if value is None:
            continue
        if metric.endswith("_ratio") and value < thresholds.min_ratio:
            violations.append(f"{metric} {value:.4f} < {thresholds.min_ratio}")
        elif not metric.endswith("_ratio") and value > thresholds.max_difference:
            violations.append(f"{metric} {value:.4f} > {thresholds.max_difference}")
    waived = waived or {}
    small = excluded if small_groups_count else []
    return FeatureFairness(
        feature=name,
        groups=per_group,
        excluded_groups=excluded,
        headline=headline,
        violations=violations,
        compared=compared,
        inconclusive=not measurable or bool(undefined) or any(g not in waived for g in small),
        small_groups=small,
        waived_groups={g: waived[g] for g in small if g in waived},
    )


def _regression_headline(
    y_true: np.ndarray, y_pred: np.ndarray, groups: pd.Series, all_true: np.ndarray
) -> dict[str, float | None]:
    """Per-group MAE over the groups large enough to compare (fairlearn MetricFrame): its
    largest difference, that difference in standard deviations of the label (all evaluation
    rows), and the ratio smallest / largest (1.0 when every group is predicted exactly)."""
    from fairlearn.metrics import MetricFrame
    from sklearn.metrics import mean_absolute_error

    frame = MetricFrame(
        metrics=mean_absolute_error, y_true=y_true, y_pred=y_pred, sensitive_features=groups.reset_index(drop=True)
    )
    difference = _clean(frame.difference(method="between_groups"))
    largest = float(frame.group_max())
    ratio = _clean(frame.ratio(method="between_groups")) if largest > 0 else 1.0
    spread = float(np.std(np.asarray(all_true, dtype=float)))
    return {
        "mean_absolute_error_difference": difference,
        REGRESSION_RATIO: ratio,
        REGRESSION_SCALED_DIFFERENCE: (difference / spread) if difference is not None and spread > 0 else None,
    }


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
    waived: dict[str, dict[str, str]] | None = None,
) -> FairnessResult:
    """Fairness for each sensitive feature and for their intersection. A declared feature's group
    below min_group_size makes it inconclusive unless `waived` ({feature: {group: justification}})
    names it; the intersection's small groups are shown only (two features on a few hundred rows
    nearly always make one)."""
    notes: list[str] = []
    positive_label = None
    if task == "classification":
        positive_label = 1 if 1 in classes else (classes[-1] if classes else None)
        if len(classes) > 2:
            notes.append(f"Multi-class model: disparities are computed one-vs-rest for class {positive_label!r}.")
    columns: list[tuple[str, pd.Series]] = [(f, group_labels(frame[f])) for f in sensitive_features]
    if len(sensitive_features) > 1:
        columns.append((INTERSECTION_SEPARATOR.join(sensitive_features), intersection(frame, sensitive_features)))
    waived = waived or {}
    results = [
        assess_feature(
            name,
            groups,
            y_true,
            y_pred,
            task=task,
            positive_label=positive_label,
            thresholds=thresholds,
            waived=waived.get(name),
            small_groups_count=name in sensitive_features,
        )
        for name, groups in columns
    ]
    for result in results:
        unwaived = [g for g in result.small_groups if g not in result.waived_groups]
        if unwaived:
            sizes = ", ".join(f"{g} ({int(result.groups.get(g, {}).get('count') or 0)} rows)" for g in unwaived)
            notes.append(
                f"{result.feature}: group(s) {sizes} have fewer than {thresholds.min_group_size} rows, so they "
                "cannot be measured: fairness is inconclusive unless a risk officer waives them."
            )
        for group, why in result.waived_groups.items():
            notes.append(f"{result.feature}: small group {group} waived by a risk officer: {why}")
        if result.excluded_groups and not result.small_groups:
            notes.append(
                f"{result.feature}: group(s) {', '.join(result.excluded_groups)} have fewer than "
                f"{thresholds.min_group_size} rows; they are shown but excluded from the headline numbers."
            )
        if result.inconclusive and not result.headline:
            notes.append(
                f"{result.feature}: fewer than two groups of at least {thresholds.min_group_size} rows to "
                "compare; no headline numbers, so fairness is inconclusive."
            )
        elif undefined := ", ".join(m for m in result.compared if result.headline.get(m) is None):
            notes.append(f"{result.feature}: {undefined} undefined (0/0) on these groups, so fairness is inconclusive.")
    if task == "regression" and results:
        notes.append(
            f"Regression: {REGRESSION_RATIO} is the smallest group MAE / the largest (policy: at least "
            f"{thresholds.min_ratio}); {REGRESSION_SCALED_DIFFERENCE} is the largest MAE gap divided by the "
            f"label's standard deviation (policy: at most {thresholds.max_difference})."
        )
    if not sensitive_features:
        notes.append("No sensitive features were named for this version: fairness was not assessed.")
    return FairnessResult(task=task, positive_label=positive_label, features=results, notes=notes)
