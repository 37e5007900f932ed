"""Explanations with real models, no database: exactness, reason codes and counterfactuals."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import Ridge
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline

from lifecycle import demo_data
from serving import counterfactual, explain
from serving.log import leaf_of

FEATURES = demo_data.NUMERIC + demo_data.CATEGORICAL
DTYPES = {**{n: "int64" for n in demo_data.NUMERIC}, **{c: "string" for c in demo_data.CATEGORICAL}}


@pytest.fixture(scope="module")
def frames(german: Any) -> tuple[Any, Any]:
    train, evaluation = german
    return train, evaluation


def make(model: Any, evaluation: Any, task: str = "classification") -> explain.Explainer:
    classes = list(getattr(model, "classes_", []))
    return explain.Explainer(
        model,
        evaluation[FEATURES],
        features=FEATURES,
        task=task,
        classes=classes,
        favourable=classes[-1] if classes else None,
    )


def test_linear_contributions_add_up_to_the_decision_function(logreg, frames):
    _, evaluation = frames
    explainer = make(logreg, evaluation)
    assert explainer.kind == "linear" and explainer._transform != explainer._sklearn_transform  # compiled
    rows = evaluation[FEATURES].head(200)
    decision = logreg.decision_function(rows)
    for attribution, expected in zip(explainer.attribute(rows), decision, strict=True):
        assert abs(attribution.base_value + sum(attribution.contributions.values()) - expected) < 1e-9
        assert abs(attribution.value - expected) < 1e-9
        assert set(attribution.contributions) == set(FEATURES)  # one-hot columns summed back


def test_linear_regression_in_a_pipeline_is_exact(frames):
    train, evaluation = frames
    model = Pipeline([("prepare", demo_data._preprocessor()), ("fit", Ridge())]).fit(train[FEATURES], train["age"])
    explainer = make(model, evaluation, task="regression")
    rows = evaluation[FEATURES].head(50)
    for attribution, expected in zip(explainer.attribute(rows), model.predict(rows), strict=True):
        assert abs(attribution.base_value + sum(attribution.contributions.values()) - expected) < 1e-9


@pytest.mark.parametrize("kind", ["forest", "boosting"])
def test_treeshap_values_add_up_to_the_model_output(kind, frames):
    train, evaluation = frames
    if kind == "forest":
        model = demo_data.train_random_forest(train, n_estimators=30)
    else:
        final = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0)
        model = Pipeline([("prepare", demo_data._preprocessor()), ("classify", final)])
        model.fit(train[FEATURES], train[demo_data.LABEL])
    explainer = make(model, evaluation)
    assert explainer.kind == "tree" and explainer.method.startswith("TreeSHAP")
    rows = evaluation[FEATURES].head(100)
    expected = model.predict_proba(rows)[:, 1] if kind == "forest" else model.decision_function(rows)
    for attribution, value in zip(explainer.attribute(rows), expected, strict=True):
        assert abs(attribution.base_value + sum(attribution.contributions.values()) - value) < 1e-6


def test_other_models_get_a_model_agnostic_shap_method_named_in_method(frames):
    train, evaluation = frames
    model = Pipeline([("prepare", demo_data._preprocessor()), ("classify", KNeighborsClassifier())])
    model.fit(train[FEATURES], train[demo_data.LABEL])
    explainer = make(model, evaluation)
    [attribution] = explainer.attribute(evaluation[FEATURES].head(1))
    assert "model-agnostic" in attribution.method and "exact" in attribution.method
    probability = model.predict_proba(evaluation[FEATURES].head(1))[0, 1]
    assert abs(attribution.base_value + sum(attribution.contributions.values()) - probability) < 1e-6


def _most_adverse(logreg: Any, evaluation: Any) -> int:
    return int(np.argmin(logreg.decision_function(evaluation[FEATURES])))


def test_reason_codes_of_a_clearly_adverse_row_are_its_most_negative_contributions(logreg, frames):
    _, evaluation = frames
    explainer = make(logreg, evaluation)
    i = _most_adverse(logreg, evaluation)
    row = evaluation[FEATURES].iloc[[i]]
    assert logreg.predict(row)[0] == 0  # declined
    [attribution] = explainer.attribute(row)
    codes = explain.reason_codes(
        attribution,
        row.iloc[0].to_dict(),
        texts={"duration": "Loan duration too long"},
        facts=explain.FeatureFacts({"duration": 18.0}),
    )
    most_negative = sorted(attribution.contributions, key=attribution.contributions.get)[: len(codes)]
    assert [c.feature for c in codes] == most_negative
    assert 1 <= len(codes) <= 4 and all(c.contribution < 0 for c in codes)
    by_feature = {c.feature: c.text for c in codes}
    if "duration" in by_feature:
        assert by_feature["duration"] == "Loan duration too long"
    assert all(c.text for c in codes)


def test_every_counterfactual_flips_the_decision_when_re_run(logreg, frames):
    _, evaluation = frames
    declined = [i for i, label in enumerate(logreg.predict(evaluation[FEATURES])) if label == 0][:8]
    found_any = False
    for i in declined:
        row = evaluation[FEATURES].iloc[i].to_dict()
        changes = counterfactual.counterfactuals(
            lambda f: list(logreg.predict(f)),
            row,
            reference=evaluation[FEATURES],
            features=FEATURES,
            dtypes=DTYPES,
            favourable=1,
            excluded={"sex"},
        )
        assert len(changes) <= 3
        for change in changes:
            found_any = True
            assert change.feature != "sex"
            proposals = change.proposed if isinstance(change.proposed, list) else [change.proposed]
            for proposed in proposals:
                changed = {**row, change.feature: proposed}
                import pandas as pd

                assert logreg.predict(pd.DataFrame([changed], columns=FEATURES))[0] == 1
            if not isinstance(change.proposed, list):
                values = evaluation[change.feature]
                assert values.min() <= change.proposed <= values.max() or change.proposed == row[change.feature]
    assert found_any


def test_a_favourable_row_has_no_counterfactual(logreg, frames):
    _, evaluation = frames
    i = int(np.argmax(logreg.decision_function(evaluation[FEATURES])))
    row = evaluation[FEATURES].iloc[i].to_dict()
    assert (
        counterfactual.counterfactuals(
            lambda f: list(logreg.predict(f)),
            row,
            reference=evaluation[FEATURES],
            features=FEATURES,
            dtypes=DTYPES,
            favourable=1,
            excluded=set(),
        )
        == []
    )


def test_records_without_business_keys_hash_as_before():
    import datetime
    import uuid

    values = (
        uuid.UUID(int=1),
        datetime.datetime(2026, 3, 3, tzinfo=datetime.UTC),
        "credit-risk",
        1,
        7,
        "api-key:bank",
        "",
        "v1",
        "ok",
        "",
        1,
        "onnx",
        0.5,
        "[]",
        "{}",
    )
    assert leaf_of(values) == leaf_of((*values, ""))  # an old row (15 columns) and a keyless new one
    assert leaf_of((*values, '["2026-118"]')) != leaf_of(values)


def test_random_forest_and_gradient_boosting_are_explained_by_treeshap_not_permutation(frames):
    train, evaluation = frames
    forest = Pipeline(
        [("prepare", demo_data._preprocessor()), ("classify", RandomForestClassifier(n_estimators=5, random_state=0))]
    ).fit(train[FEATURES], train[demo_data.LABEL])
    assert make(forest, evaluation).kind == "tree"


def test_linear_contributions_from_plain_columns_are_the_frame_paths_to_the_last_bit(logreg, frames):
    from serving.inputs import to_frame, to_tensors

    _, evaluation = frames
    explainer = make(logreg, evaluation)
    assert explainer.takes_columns
    rows = evaluation[FEATURES].head(200)
    records = rows.to_dict(orient="records")
    schema = [{"name": n, "dtype": DTYPES[n]} for n in FEATURES]
    from_frame = explainer.attribute(to_frame(records, schema))
    from_lists = explainer.attribute_columns({n: [r[n] for r in records] for n in FEATURES})
    from_tensors = explainer.attribute_columns(to_tensors(records, schema))  # what the ONNX engine built
    assert from_lists == from_frame and from_tensors == from_frame
    for attribution, expected in zip(from_tensors, logreg.decision_function(rows), strict=True):
        assert abs(attribution.base_value + sum(attribution.contributions.values()) - expected) < 1e-9
        assert abs(attribution.value - expected) < 1e-9


def test_a_bare_linear_model_takes_plain_columns_and_stays_exact(frames):
    from sklearn.linear_model import LogisticRegression

    train, evaluation = frames
    numeric = demo_data.NUMERIC
    model = LogisticRegression(max_iter=2000).fit(train[numeric], train[demo_data.LABEL])
    classes = list(model.classes_)
    explainer = explain.Explainer(
        model, evaluation[numeric], features=numeric, task="classification", classes=classes, favourable=classes[-1]
    )
    assert explainer.kind == "linear" and explainer.takes_columns
    rows = evaluation[numeric].head(100)
    attributions = explainer.attribute_columns({n: rows[n].tolist() for n in numeric})
    assert attributions == explainer.attribute(rows)
    for attribution, expected in zip(attributions, model.decision_function(rows), strict=True):
        assert abs(attribution.base_value + sum(attribution.contributions.values()) - expected) < 1e-9


def test_a_linear_pipeline_that_cannot_be_compiled_needs_a_frame_and_stays_exact(frames):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder

    train, evaluation = frames
    prepare = ColumnTransformer(
        [
            ("num", MinMaxScaler(), demo_data.NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore"), demo_data.CATEGORICAL),
        ]
    )
    model = Pipeline([("prepare", prepare), ("classify", LogisticRegression(max_iter=2000))])
    model.fit(train[FEATURES], train[demo_data.LABEL])
    explainer = make(model, evaluation)
    assert explainer.kind == "linear" and not explainer.takes_columns  # scikit-learn's own transform
    rows = evaluation[FEATURES].head(50)
    for attribution, expected in zip(explainer.attribute(rows), model.decision_function(rows), strict=True):
        assert abs(attribution.base_value + sum(attribution.contributions.values()) - expected) < 1e-9


def test_tree_models_do_not_take_plain_columns(frames):
    train, evaluation = frames
    assert not make(demo_data.train_random_forest(train, n_estimators=5), evaluation).takes_columns
