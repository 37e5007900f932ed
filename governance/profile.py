"""The reference profile: how the evaluation data and the model's answers on it are distributed,
frozen when the checks run and bound into the approval, so that monitoring compares live
traffic with exactly what was reviewed (docs/design.md, "Monitoring"). Arrays in, plain data out.

Numeric feature: bin edges are the unique values of numpy.quantile(reference, [0.1, ..., 0.9]),
bins (-inf, e1], (e1, e2], ..., (ek, +inf), plus one bin for missing values. Categorical
feature: one bin per category seen in the reference, plus one bin for anything unseen. The
prediction is profiled as the numeric feature `__prediction__` (the positive-class probability
of a binary classifier, the value of a regressor; a multi-class label is categorical)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

PREDICTION = "__prediction__"
DECILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
NUMERIC_DTYPES = ("int", "uint", "float")
UNSEEN = "(unseen)"
MISSING = "(missing)"
MAX_VALUES = 50_000


def is_numeric(dtype: str) -> bool:
    return str(dtype).startswith(NUMERIC_DTYPES)


def numeric_values(values: Any) -> np.ndarray:
    """Float values; anything that is not a finite number (None, NaN, text) becomes NaN."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return values
    try:  # the common case, numbers only: 3-4x faster than through a pandas object Series
        array = np.asarray(values, dtype=float)
        if array.ndim == 1:
            return array
    except (TypeError, ValueError):
        pass
    series = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
    return series.to_numpy(dtype=float, na_value=np.nan)


def category_key(value: Any) -> str:
    """One spelling per category, whatever type the CSV reader or the JSON client gave it."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def numeric_bins(reference: np.ndarray) -> list[float]:
    finite = reference[~np.isnan(reference)]
    if finite.size == 0:
        return []
    return [float(e) for e in np.unique(np.quantile(finite, DECILES))]


def count_numeric(values: np.ndarray, edges: list[float]) -> list[int]:
    """Counts per bin (-inf, e1], ..., (ek, +inf), then the missing values."""
    missing = np.isnan(values)
    index = np.searchsorted(np.asarray(edges, dtype=float), values[~missing], side="left")
    counts = np.bincount(index, minlength=len(edges) + 1)
    return [int(c) for c in counts] + [int(missing.sum())]


def count_categorical(values: Any, categories: list[str]) -> list[int]:
    """Counts per reference category, then everything unseen (missing included unless seen)."""
    by_key: dict[str, int] = {}
    # Keys are spelled once per distinct value, not once per row (Counter counts in C). Two NaN
    # objects are different Counter keys: each is spelled MISSING, so they add up.
    values = list(values)
    for value, n in Counter(values).items():
        key = category_key(value)
        by_key[key] = by_key.get(key, 0) + n
    seen = [by_key.get(c, 0) for c in categories]
    return seen + [len(values) - sum(seen)]


def sample(array: np.ndarray) -> list[float]:
    """At most MAX_VALUES of the finite values (every k-th), kept with the profile for KS."""
    finite = array[np.isfinite(array)]
    step = max(1, -(-len(finite) // MAX_VALUES))
    return [float(v) for v in finite[::step]]


def feature_profile(values: Any, dtype: str, *, keep_values: bool = False) -> dict[str, Any]:
    if is_numeric(dtype):
        array = numeric_values(values)
        edges = numeric_bins(array)
        entry = {"kind": "numeric", "edges": edges, "counts": count_numeric(array, edges)}
        if keep_values:
            entry["values"] = sample(array)
        return entry
    categories = sorted({category_key(v) for v in values})
    return {"kind": "categorical", "categories": categories, "counts": count_categorical(values, categories)}


def prediction_values(
    *, task: str, classes: list[Any], labels: Any, probabilities: Any
) -> tuple[str, list[Any] | np.ndarray]:
    """What `__prediction__` profiles, and its kind: the last class's probability for a binary
    classifier with probabilities, the value for a regressor, the label otherwise."""
    if task == "regression":
        return "float", numeric_values(labels)
    if probabilities is not None and len(classes) == 2:
        return "float", np.asarray([row[-1] for row in probabilities], dtype=float)
    return "str", list(labels)


def build_profile(
    frame: pd.DataFrame, schema: list[dict[str, str]], *, task: str, classes: list[Any], labels: Any, probabilities: Any
) -> dict[str, Any]:
    """The profile of the evaluation data (one entry per input feature) and of the model's answers."""
    # KS needs the reference values themselves: kept with the profile (at most MAX_VALUES per
    # feature, every k-th), so a window never re-reads the evaluation data.
    features = {
        column["name"]: feature_profile(frame[column["name"]].tolist(), column["dtype"], keep_values=True)
        for column in schema
    }
    dtype, values = prediction_values(task=task, classes=classes, labels=labels, probabilities=probabilities)
    features[PREDICTION] = feature_profile(values, dtype, keep_values=True)
    return {"rows": len(frame), "features": features}


def bin_labels(entry: dict[str, Any]) -> list[str]:
    """Human names of a profile entry's bins, in order."""
    if entry["kind"] == "categorical":
        return [*entry["categories"], UNSEEN]
    edges = entry["edges"]
    if not edges:
        return ["(any)", MISSING]
    inner = [f"({a:g}, {b:g}]" for a, b in zip(edges, edges[1:], strict=False)]
    names = [f"≤ {edges[0]:g}", *inner, f"> {edges[-1]:g}"]
    return names + [MISSING]
