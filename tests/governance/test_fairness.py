"""The project's fairness numbers equal fairlearn's own functions on the same predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    selection_rate,
    true_positive_rate,
)

from governance import fairness
from lifecycle import demo_data


@pytest.fixture(scope="module")
def predictions(german, logreg):
    evaluation = german[1]
    y_pred = logreg.predict(evaluation[demo_data.NUMERIC + demo_data.CATEGORICAL])
    return evaluation, evaluation["risk"].to_numpy(), np.asarray(y_pred)


def test_headline_numbers_equal_fairlearn_to_1e_9(predictions):
    evaluation, y_true, y_pred = predictions
    result = fairness.assess(
        evaluation,
        ["sex", "age_group"],
        y_true,
        y_pred,
        task="classification",
        classes=[0, 1],
        thresholds=fairness.Thresholds(min_group_size=1),
    )
    for feature in ("sex", "age_group"):
        ours = next(f for f in result.features if f.feature == feature)
        groups = evaluation[feature]
        expected = {
            "demographic_parity_difference": demographic_parity_difference(y_true, y_pred, sensitive_features=groups),
            "demographic_parity_ratio": demographic_parity_ratio(y_true, y_pred, sensitive_features=groups),
            "equalized_odds_difference": equalized_odds_difference(y_true, y_pred, sensitive_features=groups),
            "equalized_odds_ratio": equalized_odds_ratio(y_true, y_pred, sensitive_features=groups),
        }
        for name, value in expected.items():
            assert ours.headline[name] == pytest.approx(value, abs=1e-9), (feature, name)
        frame = MetricFrame(
            metrics={"selection_rate": selection_rate, "true_positive_rate": true_positive_rate},
            y_true=y_true,
            y_pred=y_pred,
            sensitive_features=groups,
        )
        for group, row in frame.by_group.iterrows():
            assert ours.groups[str(group)]["selection_rate"] == pytest.approx(row["selection_rate"], abs=1e-9)
            assert ours.groups[str(group)]["true_positive_rate"] == pytest.approx(row["true_positive_rate"], abs=1e-9)


def test_intersection_is_assessed(predictions):
    evaluation, y_true, y_pred = predictions
    result = fairness.assess(
        evaluation,
        ["sex", "age_group"],
        y_true,
        y_pred,
        task="classification",
        classes=[0, 1],
        thresholds=fairness.Thresholds(min_group_size=1),
    )
    intersection = result.features[-1]
    assert intersection.feature == "sex × age_group"
    combined = evaluation["sex"] + " × " + evaluation["age_group"]
    assert intersection.headline["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y_true, y_pred, sensitive_features=combined), abs=1e-9
    )


def test_small_groups_are_reported_but_excluded_from_the_headline(predictions):
    evaluation, y_true, y_pred = predictions
    result = fairness.assess(
        evaluation,
        ["sex", "age_group"],
        y_true,
        y_pred,
        task="classification",
        classes=[0, 1],
        thresholds=fairness.Thresholds(min_group_size=30),
    )
    intersection = result.features[-1]
    small = [g for g, n in (evaluation["sex"] + " × " + evaluation["age_group"]).value_counts().items() if n < 30]
    assert small and intersection.excluded_groups == sorted(small)
    assert all(g in intersection.groups for g in small)
    keep = ~(evaluation["sex"] + " × " + evaluation["age_group"]).isin(small).to_numpy()
    combined = (evaluation["sex"] + " × " + evaluation["age_group"])[keep]
    assert intersection.headline["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y_true[keep], y_pred[keep], sensitive_features=combined), abs=1e-9
    )
    assert any("excluded from the headline" in n for n in result.notes)


def test_missing_values_form_their_own_group():
    frame = pd.DataFrame({"region": ["north"] * 40 + [None] * 40})
    y_true = np.array([1, 0] * 40)
    y_pred = np.array([1] * 40 + [0] * 40)
    result = fairness.assess(
        frame, ["region"], y_true, y_pred, task="classification", classes=[0, 1], thresholds=fairness.Thresholds()
    )
    assert set(result.features[0].groups) == {"north", fairness.MISSING_GROUP}
    assert result.features[0].headline["demographic_parity_difference"] == pytest.approx(1.0)
    assert not result.passed


def test_regression_reports_group_means():
    frame = pd.DataFrame({"sex": ["f"] * 50 + ["m"] * 50})
    y_true = np.arange(100, dtype=float)
    y_pred = y_true + 1.0
    result = fairness.assess(
        frame, ["sex"], y_true, y_pred, task="regression", classes=[], thresholds=fairness.Thresholds()
    )
    groups = result.features[0].groups
    assert groups["f"]["mean_prediction"] == pytest.approx(25.5) and groups["m"]["mean_absolute_error"] == 1.0
    assert result.features[0].headline["mean_prediction_difference"] == pytest.approx(50.0)
