"""Counterfactuals of an adverse decision (pure: a predict function, a row and the reference data
in, changes out). For each input feature alone: the smallest change within the reference range
that gives the favourable class (numeric: the nearest flipping value on a grid of the reference's
quantiles, then bisection on the model between it and the last value that does not flip;
categorical: every reference category that flips it). The smallest changes (numeric in reference
standard deviations, a category counting as one) come first, at most three, each verified by
running the model again on the changed row. Sensitive features are never proposed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

Predict = Callable[[pd.DataFrame], list[Any]]
BISECTION_STEPS = 30


@dataclass(frozen=True)
class Change:
    feature: str
    current: Any
    proposed: Any  # a number, or the list of categories that flip the decision
    decision: Any  # what the model decides with the change
    distance: float  # in reference standard deviations (1 for a category)
    verified: bool


def _favourable(predict: Predict, frame: pd.DataFrame, favourable: Any) -> np.ndarray:
    return np.array([label == favourable or str(label) == str(favourable) for label in predict(frame)])


def counterfactuals(
    predict: Predict,
    row: dict[str, Any],
    *,
    reference: pd.DataFrame,
    features: list[str],
    dtypes: dict[str, str],
    favourable: Any,
    excluded: set[str],
    limit: int = 3,
) -> list[Change]:
    """Single-feature changes that turn `row` into the favourable class (none if it is already)."""
    base = pd.DataFrame([row], columns=features)
    for name in features:
        if dtypes.get(name) in ("int64", "float64"):
            base[name] = base[name].astype(dtypes[name])
    if _favourable(predict, base, favourable)[0]:
        return []
    found: list[Change] = []
    for name in features:
        if name in excluded:
            continue
        column = reference[name]
        if dtypes.get(name) in ("int64", "float64"):
            change = _numeric(predict, base, name, column, dtypes[name], favourable)
        else:
            change = _categorical(predict, base, name, column, favourable)
        if change is not None:
            found.append(change)
    found.sort(key=lambda c: (c.distance, c.feature))
    return found[:limit]


def _with(base: pd.DataFrame, name: str, values: list[Any], dtype: str | None = None) -> pd.DataFrame:
    frame = pd.concat([base] * len(values), ignore_index=True)
    frame[name] = pd.Series(values, dtype=dtype) if dtype else values
    return frame


def _numeric(
    predict: Predict, base: pd.DataFrame, name: str, column: pd.Series, dtype: str, favourable: Any
) -> Change | None:
    current = float(base[name].iloc[0])
    values = column.to_numpy(dtype=float)
    grid = np.unique(np.concatenate([np.quantile(values, np.linspace(0, 1, 41)), [values.min(), values.max()]]))
    if dtype == "int64":
        grid = np.unique(np.round(grid))
    flips = _favourable(predict, _with(base, name, list(grid), dtype), favourable)
    if not flips.any():
        return None
    nearest = grid[flips][np.argmin(np.abs(grid[flips] - current))]
    # Bisection between the current value (not favourable) and the nearest flipping grid value.
    lo, hi = current, float(nearest)
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2
        if dtype == "int64":
            mid = float(np.floor(mid) if hi < lo else np.ceil(mid))
            if mid in (lo, hi):
                break
        if _favourable(predict, _with(base, name, [mid], dtype), favourable)[0]:
            hi = mid
        else:
            lo = mid
    proposed: Any = int(round(hi)) if dtype == "int64" else float(hi)
    check = _with(base, name, [proposed], dtype)
    decision = predict(check)[0]
    verified = bool(_favourable(predict, check, favourable)[0])
    if not verified:
        return None
    spread = float(np.std(values)) or 1.0
    current_value: Any = int(current) if dtype == "int64" else current
    return Change(name, current_value, proposed, decision, abs(float(hi) - current) / spread, verified)


def _categorical(predict: Predict, base: pd.DataFrame, name: str, column: pd.Series, favourable: Any) -> Change | None:
    current = base[name].iloc[0]
    categories = sorted({str(v) for v in column if str(v) != str(current)})
    if not categories:
        return None
    flips = _favourable(predict, _with(base, name, categories), favourable)
    chosen = [c for c, ok in zip(categories, flips, strict=True) if ok]
    if not chosen:
        return None
    decision = predict(_with(base, name, chosen[:1]))[0]
    return Change(name, current, chosen, decision, 1.0, True)
