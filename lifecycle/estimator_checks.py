"""Checks of an estimator skops has built from an allowed schema, before it is accepted
(lifecycle.artifacts): every fitted parameter present, nothing that reads files, and trees
whose nodes, thresholds and bins a prediction can walk without leaving its arrays."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np


def missing_parameter(model: Any) -> str:
    """Which estimator's state lacks one of its constructor parameters ("" if none): scikit-learn
    reads each one as an attribute (get_params, repr, clone), so a state without `C` would be an
    AttributeError in every later step."""
    if not callable(getattr(model, "get_params", None)):
        return ""  # not an estimator: the checks after this one say so
    try:
        model.get_params(deep=True)
    except AttributeError as exc:
        obj = getattr(exc, "obj", None)
        owner = type(obj if obj is not None else model).__name__
        return f"{owner} lacks the parameter {exc.name!r}" if exc.name else f"state lacks a parameter ({exc})"
    except Exception:  # not an estimator: the checks after this one say so
        return ""
    return ""


def file_reader_of(model: Any) -> str:
    """The parameter path of a text vectorizer (or anything with an `input` parameter) that would
    read files or file objects named by the request instead of the text it is given ("" if none)."""
    try:
        params = model.get_params(deep=True)
    except Exception:  # not an estimator: the checks after this one say so
        return ""
    for name, value in params.items():
        if (name == "input" or name.endswith("__input")) and value in ("filename", "file"):
            return f"parameter {name}={value!r}"
    return ""


def _tree_problem(tree: Any) -> str:
    """sklearn.tree._tree.Tree arrays are trusted by scikit-learn without bounds checks: a crafted
    file could make predict() read out of bounds. Check what predict relies on."""

    n = int(tree.node_count)
    left, right, feature = np.asarray(tree.children_left), np.asarray(tree.children_right), np.asarray(tree.feature)
    if n < 1 or not (len(left) == len(right) == len(feature) == n) or np.asarray(tree.value).shape[0] != n:
        return "node count does not match its arrays"
    index = np.arange(n)
    leaf = left == -1
    if not np.array_equal(leaf, right == -1):
        return "a node has exactly one child"
    inner = ~leaf
    # children are stored after their parent: in range, and no cycles
    if np.any(
        (left[inner] <= index[inner]) | (left[inner] >= n) | (right[inner] <= index[inner]) | (right[inner] >= n)
    ):
        return "a child index is out of range"
    if np.any((feature[inner] < 0) | (feature[inner] >= int(tree.n_features))):
        return "a split feature index is out of range"
    return ""


def _predictor_problem(predictor: Any, n_features: int, categorical_features: Any) -> str:
    """HistGradientBoosting's TreePredictor: the same unchecked indices as Tree, in one record array
    (children, split feature, and the row of the category bitsets a categorical split reads)."""

    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

    nodes = getattr(predictor, "nodes", None)
    if not isinstance(nodes, np.ndarray) or nodes.dtype != PREDICTOR_RECORD_DTYPE or nodes.ndim != 1 or not len(nodes):
        return "its nodes are not scikit-learn's node records"
    bitsets = [np.asarray(getattr(predictor, f"{kind}_left_cat_bitsets", None)) for kind in ("raw", "binned")]
    if any(b.ndim != 2 or b.shape[1] != 8 for b in bitsets):
        return "a category bitset array has the wrong shape"
    n, index, inner = len(nodes), np.arange(len(nodes)), nodes["is_leaf"] == 0
    left, right = nodes["left"].astype(np.int64), nodes["right"].astype(np.int64)
    if np.any(
        (left[inner] <= index[inner]) | (left[inner] >= n) | (right[inner] <= index[inner]) | (right[inner] >= n)
    ):
        return "a child index is out of range"
    feature = nodes["feature_idx"]
    if np.any((feature[inner] < 0) | (feature[inner] >= n_features)):
        return "a split feature index is out of range"
    categorical = inner & (nodes["is_categorical"] != 0)
    if np.any(nodes["bitset_idx"][categorical] >= min(b.shape[0] for b in bitsets)):
        return "a category bitset index is out of range"
    if categorical.any():  # the known-category bitsets have one row per categorical feature only
        known = np.asarray(categorical_features if categorical_features is not None else [], dtype=bool)
        if known.shape != (n_features,) or not known[feature[categorical]].all():
            return "a categorical split is on a feature not known as categorical"
    return ""


def _hist_gradient_boosting_problem(estimator: Any) -> str:
    """Check every predictor against the number of features its estimator validates input to."""

    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    n_features = getattr(estimator, "n_features_in_", None)
    if not isinstance(n_features, (int, np.integer)) or isinstance(n_features, bool):
        return "the estimator does not say how many features its trees split on"
    categorical = getattr(getattr(estimator, "_bin_mapper", None), "is_categorical_", None)
    predictors = [p for it in estimator._predictors if isinstance(it, list) for p in it if isinstance(p, TreePredictor)]
    for predictor in predictors:  # anything else fails with a Python error at predict time, not a bad read
        problem = _predictor_problem(predictor, int(n_features), categorical)
        if problem:
            return problem
    return ""


def first_invalid_tree(model: Any, limit: int = 100_000) -> str:
    """Walk the loaded object graph (estimators, lists, dicts, object arrays) and check every tree,
    including HistGradientBoosting's predictors against the features their estimator takes."""

    from sklearn.ensemble._hist_gradient_boosting.gradient_boosting import BaseHistGradientBoosting

    seen: set[int] = set()
    stack = [model]
    while stack and len(seen) < limit:
        obj = stack.pop()
        if id(obj) in seen or obj is None or isinstance(obj, (str, bytes, int, float, bool)):
            continue
        seen.add(id(obj))
        if type(obj).__name__ == "Tree" and type(obj).__module__.startswith("sklearn.tree"):
            problem = _tree_problem(obj)
            if problem:
                return problem
            continue
        if isinstance(obj, BaseHistGradientBoosting) and isinstance(getattr(obj, "_predictors", None), list):
            problem = _hist_gradient_boosting_problem(obj)
            if problem:
                return problem
        if isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set)):
            stack.extend(obj)
        elif isinstance(obj, functools.partial):
            stack.extend([*obj.args, *obj.keywords.values()])
        elif isinstance(obj, np.ndarray):
            if obj.dtype == object:
                stack.extend(obj.ravel().tolist())
        elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("sklearn"):
            stack.extend(vars(obj).values())
    return ""
