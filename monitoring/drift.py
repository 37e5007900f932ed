"""Drift, live performance and live fairness: arrays in, plain data out (no database).

PSI = sum over bins of (a - e) * ln(a / e), e and a the reference and current proportions, each
proportion of 0 replaced by 0.0001 first (docs/design.md, "Monitoring"). KS is scipy.stats.ks_2samp
on the same values. Performance uses scikit-learn's definitions with the positive class the last
of the version's classes; intervals are 95% percentile bootstraps with a fixed seed, so the same
outcomes always give the same interval."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

EPSILON = 0.0001
BOOTSTRAP_RESAMPLES = 200
BOOTSTRAP_SEED = 20261129


@dataclass(frozen=True)
class Thresholds:
    """PSI warns and alerts (docs/design.md's defaults). A shift too small for PSI's bins but both
    statistically certain and material also warns: KS p-value below max_pvalue with a KS
    statistic of at least min_ks_statistic (numeric), or a chi-square p-value below max_pvalue
    with at least min_category_shift of the rows moved between categories (total variation)."""

    psi_warn: float = 0.10
    psi_alert: float = 0.25
    min_rows: int = 500
    max_pvalue: float = 0.001
    min_ks_statistic: float = 0.05
    min_category_shift: float = 0.05


def psi(expected_counts: list[int] | np.ndarray, actual_counts: list[int] | np.ndarray) -> float | None:
    """Population stability index of two count vectors over the same bins (None if either is empty)."""
    e = np.asarray(expected_counts, dtype=float)
    a = np.asarray(actual_counts, dtype=float)
    if e.sum() == 0 or a.sum() == 0:
        return None
    e, a = e / e.sum(), a / a.sum()
    e[e == 0] = EPSILON
    a[a == 0] = EPSILON
    return float(np.sum((a - e) * np.log(a / e)))


def ks(reference: np.ndarray, current: np.ndarray) -> tuple[float, float] | None:
    """Two-sample Kolmogorov-Smirnov statistic and p-value over the finite values (None if either is empty)."""
    r = reference[np.isfinite(reference)]
    c = current[np.isfinite(current)]
    if r.size == 0 or c.size == 0:
        return None
    from scipy import stats  # (scipy and scikit-learn are imported when a window is judged, not at start)

    result = stats.ks_2samp(r, c)
    return float(result.statistic), float(result.pvalue)


def category_shift(expected_counts: list[int], actual_counts: list[int]) -> tuple[float, float] | None:
    """(total variation distance, chi-square p-value) of the current counts against the
    reference shares over the same bins (a share of 0 floored at 0.0001, as for PSI)."""
    e = np.asarray(expected_counts, dtype=float)
    a = np.asarray(actual_counts, dtype=float)
    if e.sum() == 0 or a.sum() == 0:
        return None
    shares = e / e.sum()
    tv = float(0.5 * np.abs(a / a.sum() - shares).sum())
    floored = np.where(shares == 0, EPSILON, shares)
    expected = floored / floored.sum() * a.sum()
    from scipy import stats

    return tv, float(stats.chisquare(a, expected).pvalue)


def level_of(
    value: float | None,
    rows: int,
    thresholds: Thresholds,
    *,
    ks: tuple[float, float] | None = None,
    category: tuple[float, float] | None = None,
) -> str:
    """ok, warn or alert for one feature in one window (too few rows: never more than ok)."""
    if value is None or rows < thresholds.min_rows:
        return "ok"
    if value >= thresholds.psi_alert:
        return "alert"
    if value >= thresholds.psi_warn:
        return "warn"
    if ks is not None and ks[1] < thresholds.max_pvalue and ks[0] >= thresholds.min_ks_statistic:
        return "warn"
    if category is not None and category[1] < thresholds.max_pvalue and category[0] >= thresholds.min_category_shift:
        return "warn"
    return "ok"


def _interval(values: list[float]) -> list[float] | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if len(finite) < BOOTSTRAP_RESAMPLES // 2:
        return None
    low, high = np.percentile(finite, [2.5, 97.5])
    return [float(low), float(high)]


def _classification(y_true: np.ndarray, y_pred: np.ndarray, score: np.ndarray | None, positive: Any) -> dict:
    from sklearn import metrics as skm

    result: dict[str, float] = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)),
        "f1": float(skm.f1_score(y_true, y_pred, pos_label=positive, zero_division=0)),
    }
    truth = y_true == positive
    if score is not None and 0 < truth.sum() < len(truth):
        result["roc_auc"] = float(skm.roc_auc_score(truth, score))
    return result


def _regression(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    from sklearn import metrics as skm

    result = {
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
    }
    if len(y_true) > 1 and np.var(y_true) > 0:
        result["r2"] = float(skm.r2_score(y_true, y_pred))
    return result


def performance(
    *, task: str, classes: list[Any], y_true: list[Any], y_pred: list[Any], score: list[float] | None
) -> dict[str, Any]:
    """Live metrics over the outcome-joined rows, each with a 95% bootstrap interval."""
    n = len(y_true)
    if n == 0:
        return {"n_outcomes": 0, "metrics": {}, "intervals": {}}
    binary = task == "classification" and len(classes) == 2
    # (outcomes were checked to be among the classes, with their JSON type, so one dtype each)
    truth = np.asarray(y_true, dtype=None if task == "classification" else float)
    pred = np.asarray(y_pred, dtype=None if task == "classification" else float)
    prob = np.asarray(score, dtype=float) if score is not None and binary else None

    def compute(idx: np.ndarray | slice) -> dict[str, float]:
        if task == "classification":
            return _classification(truth[idx], pred[idx], None if prob is None else prob[idx], classes[-1])
        return _regression(truth[idx], pred[idx])

    values = compute(slice(None))
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    samples: dict[str, list[float]] = {k: [] for k in values}
    if n >= 2:
        for _ in range(BOOTSTRAP_RESAMPLES):
            again = compute(rng.integers(0, n, n))
            for key in samples:
                samples[key].append(again.get(key, float("nan")))
    intervals = {k: _interval(v) for k, v in samples.items()}
    return {
        "n_outcomes": n,
        "metrics": values,
        "intervals": intervals,
        "positive_class": classes[-1] if binary else None,
    }


def performance_breaches(perf: dict[str, Any], policy: dict[str, Any]) -> list[dict[str, Any]]:
    """Live metrics below the validation minimums (or above the regression maximums), judged only
    with at least the policy's minimum group size of outcomes."""
    if perf.get("n_outcomes", 0) < policy["min_group_size"]:
        return []
    bounds = {
        "accuracy": ("min", policy.get("min_accuracy")),
        "balanced_accuracy": ("min", policy.get("min_balanced_accuracy")),
        "roc_auc": ("min", policy.get("min_roc_auc")),
        "f1": ("min", policy.get("min_f1")),
        "r2": ("min", policy.get("min_r2")),
        "mae": ("max", policy.get("max_mae")),
        "rmse": ("max", policy.get("max_rmse")),
    }
    breaches = []
    for name, value in perf["metrics"].items():
        kind, bound = bounds.get(name, ("min", None))
        if bound is None:
            continue
        if (kind == "min" and value < bound) or (kind == "max" and value > bound):
            word = "below the minimum" if kind == "min" else "above the maximum"
            breaches.append(
                {
                    "kind": "performance",
                    "subject": name,
                    "value": value,
                    "threshold": bound,
                    "message": f"Live {name} {value:.4f} is {word} {bound} ({perf['n_outcomes']} outcomes).",
                }
            )
    return breaches
