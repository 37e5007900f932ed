"""Integers a column cannot hold are refused alike by both engines: `age = 10**40`
was answered by ONNX Runtime (as a float) and refused by the skops engine (pandas' int64 cast)."""

from __future__ import annotations

import pytest

from serving import engine
from serving.errors import ServingError
from serving.inputs import check_rows
from serving.models import PredictionLog
from tests.serving.conftest import rows
from tests.serving.test_predict import infer, predict

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["onnx", "skops"])
def engine_name(request, production, monkeypatch) -> str:
    """The production version served by ONNX Runtime (its check passed), or by its skops model."""
    engine.clear_cache()
    if request.param == "skops":
        monkeypatch.setattr(engine, "onnx_check", lambda version: None)
    yield request.param
    engine.clear_cache()


def test_an_integer_beyond_int64_is_a_logged_400_on_both_engines_and_protocols(keyed, german, engine_name):
    assert predict(keyed, instances=rows(german, 1)).status_code == 200
    assert PredictionLog.objects.get(outcome="ok").engine == engine_name
    for age in (10**40, -(10**40), 2**63):
        row = rows(german, 1)[0] | {"age": age}
        v1 = predict(keyed, instances=[row])
        assert v1.status_code == 400, (engine_name, v1.content)
        assert v1.json()["error"]["code"] == "invalid_input"
        problem = {"row": 0, "field": "age", "error": "is outside the 64-bit integer range"}
        assert problem in v1.json()["error"]["details"]
        v2 = infer(keyed, [row])
        assert v2.status_code == 400, (engine_name, v2.content)
        assert "age is outside the 64-bit integer range" in v2.json()["error"]
    refused = PredictionLog.objects.filter(outcome="invalid")
    assert refused.count() == 6 and not PredictionLog.objects.filter(outcome="error").exists()
    assert all(r.inputs[0]["age"] in (10**40, -(10**40), 2**63) for r in refused)  # logged exactly as sent
    edge = rows(german, 2)
    edge[0]["age"], edge[1]["age"] = 2**63 - 1, -(2**63)  # the range's ends are integers a model may take
    assert predict(keyed, instances=edge).status_code == 200


def test_float_columns_take_big_integers_that_are_finite_floats_only():
    schema = [{"name": "amount", "dtype": "float64"}, {"name": "count", "dtype": "int64"}]
    assert check_rows([{"amount": 10**40, "count": 1}], schema, max_rows=10)
    with pytest.raises(ServingError) as refused:
        check_rows([{"amount": 10**400, "count": 1}], schema, max_rows=10)
    assert refused.value.details == [{"row": 0, "field": "amount", "error": "is beyond the largest 64-bit float"}]
    with pytest.raises(ServingError, match="count is outside the 64-bit integer range"):
        check_rows([{"amount": 1.5, "count": 1e40}], schema, max_rows=10)


def test_a_text_longer_than_its_field_cap_is_refused_naming_the_field(settings):
    settings.SERVING_MAX_TEXT_CHARS = 64
    schema = [{"name": "purpose", "dtype": "string"}, {"name": "age", "dtype": "int64"}]
    assert check_rows([{"purpose": "x" * 64, "age": 1}], schema, max_rows=10)
    with pytest.raises(ServingError) as refused:
        check_rows([{"purpose": "x" * 65, "age": 1}], schema, max_rows=10)
    assert refused.value.code == "invalid_input" and refused.value.status == 400
    assert refused.value.details == [{"row": 0, "field": "purpose", "error": "is longer than 64 characters"}]


def test_known_categories_set_the_cap_of_their_field(settings):
    settings.SERVING_MAX_TEXT_CHARS = 1000
    schema = [{"name": "housing", "dtype": "string", "categories": ["own", "rent", "free"]}]
    assert check_rows([{"housing": "a-new-kind-of-tenure-up-to-32-c"}], schema, max_rows=10)
    with pytest.raises(ServingError, match="housing is longer than 32 characters"):
        check_rows([{"housing": "y" * 33}], schema, max_rows=10)


@pytest.mark.django_db
def test_three_requests_of_huge_unknown_categories_add_nothing_to_the_log_but_their_refusals(keyed, production, german):
    huge = [{**rows(german, 1)[0], "purpose": "z" * 5_000_000}]
    for _ in range(3):
        response = predict(keyed, instances=huge)
        assert response.status_code == 400, response.content[:300]
        assert "purpose is longer than" in response.json()["error"]["message"]
    v2 = infer(keyed, huge)
    assert v2.status_code == 400 and "purpose is longer than" in v2.json()["error"]
    assert not PredictionLog.objects.filter(outcome="ok").exists()
    logged = sum(len(r.inputs_json) for r in PredictionLog.objects.all())
    assert logged < 4 * 70_000  # each refusal logs a bounded sample, not the 5 MB it was sent


@pytest.mark.django_db
def test_a_submitted_version_knows_its_categories_and_serving_caps_them(keyed, production, german, settings):
    """The input schema records each text column's categories from the training and evaluation
    data (lifecycle.datasets.categories_of), so serving caps such a field at its longest category
    (at least 32 characters), well under SERVING_MAX_TEXT_CHARS."""
    settings.SERVING_MAX_TEXT_CHARS = 1000
    schema = {c["name"]: c for c in production.input_schema}
    train, evaluation = german
    seen = set(train["housing"].dropna()) | set(evaluation["housing"].dropna())
    assert schema["housing"]["categories"] == sorted(seen)
    assert "categories" not in schema["age"]
    unseen = [{**rows(german, 1)[0], "housing": "a-tenure-the-model-never-saw"}]
    assert predict(keyed, instances=unseen).status_code == 200  # an unseen category is answered
    long = [{**rows(german, 1)[0], "housing": "h" * 33}]
    refused = predict(keyed, instances=long)
    assert refused.status_code == 400
    assert "housing is longer than 32 characters" in refused.json()["error"]["message"]
    assert PredictionLog.objects.filter(outcome="invalid").count() == 1


def test_a_column_of_many_distinct_texts_is_free_text_not_a_category():
    import pandas as pd

    from lifecycle.datasets import MAX_SCHEMA_CATEGORIES, categories_of

    few = pd.DataFrame({"city": ["Lyon", "Paris", None, "Lyon"]})
    assert categories_of("city", few) == ["Lyon", "Paris"]
    many = pd.DataFrame({"note": [f"text {i}" for i in range(MAX_SCHEMA_CATEGORIES + 1)]})
    assert categories_of("note", many) is None
