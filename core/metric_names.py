"""Human names of the metrics the checks, monitoring and reports show (identifiers stay in the
data and the API; pages say what a reader says). An unknown name is shown tidied, never dropped."""

from __future__ import annotations

import re

LABELS = {
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "roc_auc": "ROC AUC",
    "f1": "F1 score",
    "precision": "Precision",
    "recall": "Recall",
    "log_loss": "Log loss",
    "brier": "Brier score",
    "r2": "R² (coefficient of determination)",
    "mae": "Mean absolute error",
    "rmse": "Root mean squared error",
    "count": "Rows",
    "selection_rate": "Selection rate",
    "true_positive_rate": "True positive rate",
    "false_positive_rate": "False positive rate",
    "mean_prediction": "Mean prediction",
    "demographic_parity_difference": "Demographic parity difference",
    "demographic_parity_ratio": "Demographic parity ratio",
    "equalized_odds_difference": "Equalized odds difference",
    "equalized_odds_ratio": "Equalized odds ratio",
    "equal_opportunity_difference": "Equal opportunity difference",
    "mean_prediction_difference": "Mean prediction difference",
    "mean_prediction_ratio": "Mean prediction ratio",
    "agreement": "Agreement",
    "psi": "PSI",
    "ks_statistic": "KS statistic",
    "ks_pvalue": "KS p-value",
    "__prediction__": "prediction",
}


def metric_label(name: str) -> str:
    """`balanced_accuracy` -> "Balanced accuracy"; an unknown identifier with its underscores as spaces."""
    return LABELS.get(name) or name.replace("_", " ").strip().capitalize()


def with_labels(text: str) -> str:
    """A check's message with the metric identifiers in it replaced by their names."""
    return _IDENTIFIER.sub(lambda m: LABELS.get(m.group(0), m.group(0)), text)


_IDENTIFIER = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b|\b(?:accuracy|f1|r2|mae|rmse)\b")
