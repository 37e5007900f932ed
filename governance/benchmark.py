"""Evidence for the validator to cite (docs/design.md, "Model risk management", outcomes analysis):

- a benchmark: an estimator of another family (a linear model for a tree or ensemble, a shallow
  decision tree for a linear model), with the standard preprocessing (numeric columns scaled,
  the others one-hot encoded), refit on the version's training data in the bounded child
  process of the reproducibility check (governance.refit) and scored on the evaluation data
  beside the artifact, with the same metrics;
- a sensitivity analysis: each numeric feature of the evaluation rows moved up by one standard
  deviation, and how much the artifact's answers move (share of decisions that change, mean
  change of the favourable class's probability, or of the predicted value for a regressor).

Computed on request (a read: nothing is stored); the validator cites the figures in the report's
outcomes analysis."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from sklearn import metrics as skm
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from governance import refit
from governance.checks import _frame
from lifecycle.models import ModelVersion, Task
from lifecycle.services import load_version_model

MAX_ROWS = 5_000  # of the evaluation data, for the sensitivity analysis
LINEAR_MARKERS = ("Logistic", "Linear", "Ridge", "Lasso", "ElasticNet", "SGD")


def _is_linear(estimator_class: str) -> bool:
    final = estimator_class.rsplit(".", 1)[-1]
    return any(marker in final for marker in LINEAR_MARKERS)


def final_estimator_class(model: Any) -> str:
    final = model.steps[-1][1] if isinstance(model, Pipeline) else model
    return f"{type(final).__module__}.{type(final).__name__}"


def challenger_for(model: Any, frame: pd.DataFrame, features: list[str], task: str) -> tuple[str, Any]:
    """(family, unfitted estimator): another family than the artifact's final estimator."""
    numeric = [f for f in features if pd.api.types.is_numeric_dtype(frame[f])]
    other = [f for f in features if f not in numeric]
    prepare = ColumnTransformer(
        [("numeric", StandardScaler(), numeric), ("categorical", OneHotEncoder(handle_unknown="ignore"), other)]
    )
    if _is_linear(final_estimator_class(model)):
        family = "decision tree (max depth 5)"
        estimator: Any = (
            DecisionTreeClassifier(max_depth=5, random_state=0)
            if task == Task.CLASSIFICATION
            else DecisionTreeRegressor(max_depth=5, random_state=0)
        )
    else:
        family = "logistic regression" if task == Task.CLASSIFICATION else "ridge regression"
        estimator = LogisticRegression(max_iter=1000) if task == Task.CLASSIFICATION else Ridge()
    return family, Pipeline([("prepare", prepare), ("model", estimator)])


def _scores(y: Any, predicted: Any, task: str, classes: list[Any]) -> dict[str, float]:
    if task != Task.CLASSIFICATION:
        return {
            "mae": float(skm.mean_absolute_error(y, predicted)),
            "rmse": float(np.sqrt(skm.mean_squared_error(y, predicted))),
            "r2": float(skm.r2_score(y, predicted)),
        }
    result = {
        "accuracy": float(skm.accuracy_score(y, predicted)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, predicted)),
    }
    if len(classes) == 2:
        positive = 1 if 1 in classes else classes[-1]
        result["f1"] = float(skm.f1_score(y, predicted, pos_label=positive))
    else:
        result["f1"] = float(skm.f1_score(y, predicted, average="macro"))
    return result


def _score_of(model: Any, X: pd.DataFrame, version: ModelVersion) -> np.ndarray:
    """The favourable class's probability (classifiers with predict_proba), else the prediction."""
    if version.task == Task.CLASSIFICATION and hasattr(model, "predict_proba"):
        column = list(model.classes_).index(version.favourable)
        return np.asarray(model.predict_proba(X))[:, column]
    return np.asarray(model.predict(X), dtype=float)


def sensitivity(model: Any, version: ModelVersion, evaluation: pd.DataFrame) -> list[dict[str, Any]]:
    X = evaluation[version.feature_names].head(MAX_ROWS)
    base_pred = np.asarray(model.predict(X))
    base_score = _score_of(model, X, version)
    rows = []
    for feature in version.feature_names:
        column = X[feature]
        if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            continue
        step = float(column.std(ddof=0) or 0.0)
        if not step:
            continue
        moved = X.copy()
        moved[feature] = column + (step if pd.api.types.is_float_dtype(column) else round(step) or 1)
        rows.append(
            {
                "feature": feature,
                "shift": step,
                "decisions_changed": float(np.mean(np.asarray(model.predict(moved)) != base_pred)),
                "mean_score_change": float(np.mean(_score_of(model, moved, version) - base_score)),
            }
        )
    return sorted(rows, key=lambda r: -abs(r["mean_score_change"]))


def benchmark(version: ModelVersion) -> dict[str, Any]:
    """The benchmark and sensitivity analysis of the version (see the module's docstring)."""
    model = load_version_model(version)
    training, evaluation = _frame(version.training_dataset), _frame(version.evaluation_dataset)
    features, label = version.feature_names, version.label_column
    X_eval, y_eval = evaluation[features], evaluation[label]
    family, challenger = challenger_for(model, training, features, version.task)
    artifact = _scores(y_eval, model.predict(X_eval), version.task, version.classes)
    result: dict[str, Any] = {
        "model": version.registered_model.name,
        "version": version.version,
        "rows": {"training": len(training), "evaluation": len(evaluation)},
        "artifact": {"estimator": final_estimator_class(model), "metrics": artifact},
        "benchmark": {"family": family, "metrics": None, "error": ""},
        "sensitivity": sensitivity(model, version, evaluation),
    }
    try:
        predicted = refit.refit_and_predict(
            challenger, training[features], training[label], X_eval, timeout=settings.REFIT_MAX_SECONDS
        )
    except (refit.RefitStopped, refit.RefitFailed) as exc:
        result["benchmark"]["error"] = str(exc)
        return result
    scores = _scores(y_eval, predicted, version.task, version.classes)
    result["benchmark"]["metrics"] = scores
    result["benchmark"]["difference"] = {k: artifact[k] - scores[k] for k in scores}
    return result
