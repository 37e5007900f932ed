"""Explaining one decision (pure: estimator, background frame and rows in, numbers out; no ORM).

Three methods, chosen by the fitted estimator:
- linear models (LogisticRegression, LinearRegression, Ridge, ... behind scalers and one-hot
  encoders): exact contributions in the decision-function space, w_k * (z_k - mean(z_k)) over the
  transformed columns z, summed back to the input feature each column comes from; base value =
  intercept + w . mean(z) over the background, so base + contributions = decision_function;
  behind scalers, one-hot encoders and passthrough the transform is compiled to numpy once per
  version (checked against scikit-learn's on the background), and attribute_columns() runs it on
  plain per-column arrays, such as the ONNX engine's tensors: no pandas on the serving path;
- tree ensembles (random forests, gradient boosting, decision trees): TreeSHAP (`shap`), path
  dependent (the trees' own training cover is the background; shap 0.51's interventional variant
  does not add up for gradient boosting), on inputs rounded through float32 as scikit-learn's
  trees see them; values sum to the model's raw output (probability for forests, log-odds for
  gradient boosting);
- anything else: shap's exact (up to 12 inputs) or permutation explainer on the input features,
  over the probability of the favourable class (or the regression value), with a background of
  up to 50 evaluation rows.
Which columns belong to which input feature is found once per model by changing one input at a
time over the background and watching which transformed columns move; a transformer that mixes
inputs (PCA, polynomial features) makes the model "anything else"."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

LINEAR = "exact linear contributions (decision function)"
TREE = "TreeSHAP (shap {version}, path dependent)"
AGNOSTIC = "shap {kind} explainer (model-agnostic, {n} background rows)"


@dataclass(frozen=True)
class Attribution:
    method: str
    output: str  # what base_value + contributions add up to
    base_value: float
    value: float
    contributions: dict[str, float]
    sign: int  # +1 when a larger output is better for the favourable class, -1 otherwise


def _final(model: Any) -> tuple[Any, Any]:
    """(preprocessing or None, final estimator) of a pipeline or a bare estimator."""
    if hasattr(model, "steps") and len(model.steps) > 1:
        return model[:-1], model.steps[-1][1]
    if hasattr(model, "steps"):
        return None, model.steps[-1][1]
    return None, model


def _dense(matrix: Any) -> np.ndarray:
    return np.asarray(matrix.toarray() if hasattr(matrix, "toarray") else matrix, dtype=float)


def column_groups(pre: Any, background: pd.DataFrame, features: list[str]) -> np.ndarray | None:
    """A (transformed columns x input features) 0/1 matrix: which input each column comes from,
    found by shifting one input at a time over the background. None when a column moves with two
    inputs (the contributions would not be separable)."""
    base = _dense(pre.transform(background))
    groups = np.zeros((base.shape[1], len(features)))
    for j, name in enumerate(features):
        shifted = background.copy()
        shifted[name] = np.roll(background[name].to_numpy(), 1)
        moved = np.any(_dense(pre.transform(shifted)) != base, axis=0)
        groups[moved, j] = 1.0
    if np.any(groups.sum(axis=1) > 1):
        return None
    return groups


@dataclass(frozen=True)
class Block:
    """One part of a compiled ColumnTransformer: scaled (or passed through) numeric inputs, or
    one-hot encoded inputs (one object array of categories per input)."""

    columns: tuple[str, ...]
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    categories: tuple[np.ndarray, ...] | None = None

    def apply(self, columns: Mapping[str, Any]) -> np.ndarray:
        """The block's transformed columns, from anything that maps an input name to its values
        (a DataFrame, the ONNX engine's [N, 1] tensors, lists of values)."""
        if self.categories is None:
            x = np.column_stack([np.asarray(columns[c], dtype=float).reshape(-1) for c in self.columns])
            return (x - self.mean) / self.scale
        return np.hstack(
            [
                # element by element `==` on object arrays, as OneHotEncoder compares categories
                (np.asarray(columns[c], dtype=object).reshape(-1, 1) == cats).astype(float)
                for c, cats in zip(self.columns, self.categories, strict=True)
            ]
        )


def apply_plan(plan: list[Block], columns: Mapping[str, Any]) -> np.ndarray:
    return np.hstack([block.apply(columns) for block in plan])


def compile_plan(pre: Any, features: list[str], background: pd.DataFrame) -> list[Block] | None:
    """A numpy version of a ColumnTransformer made of scalers, one-hot encoders and passthrough
    (scikit-learn's own transform takes ~5 ms for one row here, this ~0.05 ms); used only if it
    reproduces scikit-learn's output on the whole background. None when it does not apply."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if not isinstance(pre, ColumnTransformer) and hasattr(pre, "steps") and len(pre.steps) == 1:
        pre = pre.steps[0][1]
    if not isinstance(pre, ColumnTransformer):
        return None
    plan: list[Block] = []
    for _name, transformer, columns in pre.transformers_:
        cols = tuple(features[c] if isinstance(c, (int, np.integer)) else c for c in columns)
        if transformer == "drop" or not cols:
            continue
        if transformer == "passthrough" or isinstance(transformer, StandardScaler):
            mean, scale = np.zeros(len(cols)), np.ones(len(cols))
            if isinstance(transformer, StandardScaler):
                mean = transformer.mean_ if transformer.with_mean else mean
                scale = transformer.scale_ if transformer.with_std else scale
            plan.append(Block(cols, mean=np.asarray(mean, dtype=float), scale=np.asarray(scale, dtype=float)))
        elif isinstance(transformer, OneHotEncoder) and transformer.drop is None:
            if getattr(transformer, "_infrequent_enabled", False):
                return None
            categories = tuple(np.array(list(c), dtype=object).reshape(1, -1) for c in transformer.categories_)
            plan.append(Block(cols, categories=categories))
        else:
            return None
    if not plan:
        return None
    try:
        same = np.allclose(apply_plan(plan, background), _dense(pre.transform(background)), rtol=0, atol=1e-12)
    except (KeyError, ValueError, TypeError):
        return None
    return plan if same else None


class Explainer:
    """Attributions of one fitted model, built once per version (background = evaluation data)."""

    def __init__(
        self,
        model: Any,
        background: pd.DataFrame,
        *,
        features: list[str],
        task: str,
        classes: list[Any],
        favourable: Any,
    ) -> None:
        self.model = model
        self.features = features
        self.task = task
        self.classes = classes
        self.favourable = favourable
        self.background = background[features].reset_index(drop=True)
        pre, final = _final(model)
        self.pre, self.final = pre, final
        self.groups: np.ndarray | None = None
        self.kind = "agnostic"
        if pre is None:
            self.groups = np.eye(len(features))
        else:
            self.groups = column_groups(pre, self.background, features)
        # The compiled transform (linear models): what it needs is kept here, built once per
        # version and artifact (serving.decisions caches the Explainer by artifact hash).
        self.plan: list[Block] | None = None
        if self.groups is not None and _is_linear(final):
            self.kind = "linear"
            if pre is None:
                n = len(features)
                self.plan = [Block(tuple(features), mean=np.zeros(n), scale=np.ones(n))]
            else:
                self.plan = compile_plan(pre, features, self.background)
            self._transform = (
                functools.partial(apply_plan, self.plan) if self.plan is not None else self._sklearn_transform
            )
            z = self._transform(self.background)
            self.coef, self.intercept, self.sign, self.output = self._linear_target()
            self.mean = z.mean(axis=0)
            self.base = float(self.intercept + self.coef @ self.mean)
            self.method = LINEAR
        elif self.groups is not None and _is_tree(final):
            import shap

            self.kind = "tree"
            self._transform = self._sklearn_transform
            self.tree = shap.TreeExplainer(final)
            self.method = TREE.format(version=shap.__version__)
            self._tree_target()
        else:
            self._agnostic()

    # -- linear ---------------------------------------------------------------------------
    def _sklearn_transform(self, frame: pd.DataFrame) -> np.ndarray:
        return _dense(self.pre.transform(frame)) if self.pre is not None else frame.to_numpy(dtype=float)

    def _linear_target(self) -> tuple[np.ndarray, float, int, str]:
        coef = np.atleast_2d(np.asarray(self.final.coef_, dtype=float))
        intercept = np.atleast_1d(np.asarray(self.final.intercept_, dtype=float))
        if self.task != "classification":
            return coef[0], float(intercept[0]), 1, "the predicted value"
        classes = list(self.final.classes_)
        if coef.shape[0] == 1:  # binary: the decision function is the score of classes_[1]
            sign = 1 if _same(classes[1], self.favourable) else -1
            return coef[0], float(intercept[0]), sign, f"decision function (log-odds of class {classes[1]})"
        k = _index(classes, self.favourable)
        return coef[k], float(intercept[k]), 1, f"decision function of class {classes[k]}"

    # -- trees ----------------------------------------------------------------------------
    def _tree_target(self) -> None:
        expected = np.atleast_1d(np.asarray(self.tree.expected_value, dtype=float))
        self.class_index: int | None = None
        self.sign = 1
        if self.task == "classification" and expected.size > 1:
            self.class_index = _index(list(self.final.classes_), self.favourable)
            self.output = f"probability of class {self.favourable}"
        elif self.task == "classification":
            classes = list(self.final.classes_)
            self.sign = 1 if _same(classes[-1], self.favourable) else -1
            self.output = f"raw score (log-odds of class {classes[-1]})"
        else:
            self.output = "the predicted value"
        self.base = float(expected[self.class_index or 0])

    # -- anything else --------------------------------------------------------------------
    def _agnostic(self) -> None:
        import shap

        self.kind = "agnostic"
        self.sign = 1
        n = min(50, len(self.background))
        picks = np.linspace(0, len(self.background) - 1, n).round().astype(int)
        sample = self.background.iloc[picks].reset_index(drop=True)
        self.codes: dict[str, list[Any]] = {}
        for name in self.features:
            if not pd.api.types.is_numeric_dtype(self.background[name]):
                self.codes[name] = sorted({str(v) for v in self.background[name]})
        encoded = self._encode(sample)
        if self.task == "classification":
            index = _index(list(self.model.classes_), self.favourable)
            self.output = f"probability of class {self.favourable}"

            def f(x: np.ndarray) -> np.ndarray:
                return np.asarray(self.model.predict_proba(self._decode(x)))[:, index]
        else:
            self.output = "the predicted value"

            def f(x: np.ndarray) -> np.ndarray:
                return np.asarray(self.model.predict(self._decode(x)), dtype=float)

        masker = shap.maskers.Independent(encoded, max_samples=n)
        if len(self.features) <= 12:
            self.agnostic = shap.explainers.Exact(f, masker)
            kind = "exact"
        else:
            self.agnostic = shap.explainers.Permutation(f, masker, seed=0)
            kind = "permutation"
        self.method = AGNOSTIC.format(kind=kind, n=n)
        self._f = f

    def _encode(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.zeros((len(frame), len(self.features)))
        for j, name in enumerate(self.features):
            if name in self.codes:
                known = self.codes[name]
                for i, v in enumerate(frame[name].astype(str)):
                    if v not in known:
                        known.append(v)  # a category unseen in the background keeps its own code
                    out[i, j] = known.index(v)
            else:
                out[:, j] = frame[name].to_numpy(dtype=float)
        return out

    def _decode(self, x: np.ndarray) -> pd.DataFrame:
        frame = pd.DataFrame(x, columns=self.features)
        for name in self.features:
            if name in self.codes:
                frame[name] = [self.codes[name][int(round(c))] for c in frame[name]]
            elif pd.api.types.is_integer_dtype(self.background[name]):
                frame[name] = frame[name].round().astype("int64")
        return frame

    # -- the one entry point --------------------------------------------------------------
    @property
    def takes_columns(self) -> bool:
        """True when attribute_columns() works: a linear model whose transform is compiled."""
        return self.kind == "linear" and self.plan is not None

    def attribute_columns(self, columns: Mapping[str, Any]) -> list[Attribution]:
        """attribute() without pandas (takes_columns only): `columns` maps each input name to its
        values, e.g. the [N, 1] tensors the ONNX engine already built for the prediction. The
        same arithmetic as attribute(), so the same numbers to the last bit."""
        assert self.plan is not None, "attribute_columns() needs a compiled linear transform"
        return self._linear(apply_plan(self.plan, columns))

    def _linear(self, z: np.ndarray) -> list[Attribution]:
        assert self.groups is not None
        per_feature = ((z - self.mean) * self.coef) @ self.groups
        values = self.intercept + z @ self.coef
        return self._attributions([self.base] * len(z), values, per_feature)

    def attribute(self, frame: pd.DataFrame) -> list[Attribution]:
        """One Attribution per row of `frame` (the model's input columns, as served)."""
        frame = frame[self.features]
        if self.kind == "linear":
            return self._linear(self._transform(frame))
        if self.kind == "tree":
            z = self._transform(frame).astype(np.float32).astype(np.float64)  # as sklearn's trees see it
            raw = np.asarray(self.tree.shap_values(z, check_additivity=False))
            if raw.ndim == 3:
                raw = raw[:, :, self.class_index or 0]
            assert self.groups is not None
            return self._attributions([self.base] * len(frame), self.base + raw.sum(axis=1), raw @ self.groups)
        explained = self.agnostic(self._encode(frame))
        per_feature = np.asarray(explained.values, dtype=float)
        bases = [float(b) for b in np.atleast_1d(explained.base_values)]
        return self._attributions(bases, np.asarray(bases) + per_feature.sum(axis=1), per_feature)

    def _attributions(self, bases: list[float], values: np.ndarray, per_feature: np.ndarray) -> list[Attribution]:
        return [
            Attribution(
                method=self.method,
                output=self.output,
                base_value=float(base),
                value=value,
                contributions=dict(zip(self.features, row, strict=True)),
                sign=self.sign,
            )
            # tolist(): Python floats, the same numbers, without a float() per value
            for base, value, row in zip(
                bases, np.asarray(values, dtype=float).tolist(), per_feature.tolist(), strict=True
            )
        ]


def _is_linear(estimator: Any) -> bool:
    from sklearn.linear_model._base import LinearClassifierMixin, LinearModel

    return isinstance(estimator, (LinearClassifierMixin, LinearModel)) and hasattr(estimator, "coef_")


def _is_tree(estimator: Any) -> bool:
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.tree import BaseDecisionTree

    if isinstance(estimator, GradientBoostingClassifier) and len(estimator.classes_) > 2:
        return False  # shap's TreeExplainer explains binary gradient boosting only
    return isinstance(
        estimator,
        (
            BaseDecisionTree,
            RandomForestClassifier,
            RandomForestRegressor,
            ExtraTreesClassifier,
            ExtraTreesRegressor,
            GradientBoostingClassifier,
            GradientBoostingRegressor,
        ),
    )


def _same(a: Any, b: Any) -> bool:
    return bool(a == b) or str(a) == str(b)


def _index(classes: list[Any], wanted: Any) -> int:
    for i, c in enumerate(classes):
        if _same(c, wanted):
            return i
    return len(classes) - 1


@dataclass(frozen=True)
class ReasonCode:
    feature: str
    value: Any
    contribution: float
    text: str


@dataclass
class FeatureFacts:
    """What a generated reason text compares a value with: the reference median (numeric)."""

    medians: dict[str, float] = field(default_factory=dict)


def reason_codes(
    attribution: Attribution, row: dict[str, Any], *, texts: dict[str, str], facts: FeatureFacts, limit: int = 4
) -> list[ReasonCode]:
    """The up to `limit` features that pushed this row most toward the adverse outcome (the
    most negative contributions toward the favourable class), each with its value and a text:
    the data scientist's, or a generated one."""
    against = sorted(
        ((attribution.sign * c, name) for name, c in attribution.contributions.items() if attribution.sign * c < 0),
    )[:limit]
    codes = []
    for signed, name in against:
        value = row.get(name)
        text = texts.get(name) or _generated_text(name, value, facts)
        codes.append(ReasonCode(feature=name, value=value, contribution=signed * attribution.sign, text=text))
    return codes


def _generated_text(name: str, value: Any, facts: FeatureFacts) -> str:
    label = name.replace("_", " ")
    median = facts.medians.get(name)
    if median is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        side = "higher" if value > median else "lower" if value < median else "equal to"
        than = " than" if side != "equal to" else ""
        return f"The {label} ({_num(value)}) is {side}{than} typical ({_num(median)}), which lowered the outcome."
    return f"The {label} ({value}) lowered the outcome."


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
