"""The exact skops allow-list: dangerous names are refused and named, real models still load."""

from __future__ import annotations

import importlib
import inspect
import io
import json
import os
import sys
import warnings
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import skops.io as sio
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.cluster import BisectingKMeans, FeatureAgglomeration
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor, make_column_selector
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    StackingClassifier,
)
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.feature_selection import SelectKBest
from sklearn.gaussian_process import GaussianProcessClassifier
from sklearn.impute import IterativeImputer
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
from sklearn.model_selection import GridSearchCV, TunedThresholdClassifierCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, SplineTransformer, StandardScaler
from sklearn.semi_supervised import LabelSpreading
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils import all_estimators

from lifecycle import allowlist, demo_data, services
from lifecycle.artifacts import ArtifactRefused, inspect_artifact
from lifecycle.errors import SubmissionInvalid
from lifecycle.models import ModelVersion
from tests.conftest import make_version, stored_files

RNG = np.random.RandomState(0)
X = RNG.rand(60, 4)
Y_CLASS = (X[:, 0] + X[:, 1] > 1).astype(int)
Y_VALUE = X @ np.array([1.0, 2.0, 3.0, 4.0]) + 0.5
FRAME = pd.DataFrame(X, columns=["a", "b", "c", "d"]).assign(s=RNG.choice(["x", "y", "z"], 60))


# --- refused, and named --------------------------------------------------------------------
def _pipeline_calling(func: Any, **kw_args: Any) -> bytes:
    """A pipeline whose first step calls `func` on the request's rows (never fitted: the file
    is refused before anything in it is built)."""
    step = FunctionTransformer(func=func, kw_args=kw_args or None)
    return sio.dumps(Pipeline([("prepare", step), ("classify", LogisticRegression())]))


def _rewrite_schema(data: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    """Hand-edit schema.json inside a skops zip, as an attacker crafting a file would."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename == "schema.json":
                schema = json.loads(content)
                edit(schema)
                content = json.dumps(schema).encode()
            target.writestr(info.filename, content)
    return out.getvalue()


def _nodes(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


def _log1p_pipeline_pointing_at(module: str, name: str) -> bytes:
    """What looks like a harmless numpy.log1p pipeline, with the function renamed in the schema."""

    def edit(schema: dict[str, Any]) -> None:
        for node in _nodes(schema):
            if node.get("__module__") == "numpy" and node.get("__class__") == "log1p":
                node["__module__"], node["__class__"] = module, name

    return _rewrite_schema(_pipeline_calling(np.log1p), edit)


REFUSED = {
    "numpy.load": lambda: _pipeline_calling(np.load, allow_pickle=True),
    # numpy.testing's measure() compiles and exec()s the string it is given
    "numpy.testing._private.utils.measure": lambda: _pipeline_calling(np.testing.measure),
    "builtins.eval": lambda: _pipeline_calling(eval),
    "posix.system": lambda: _pipeline_calling(os.system),
    "os.system": lambda: _log1p_pipeline_pointing_at("os", "system"),
    "importlib.import_module": lambda: _pipeline_calling(importlib.import_module),
    "builtins.__import__": lambda: _log1p_pipeline_pointing_at("builtins", "__import__"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("name", REFUSED)
def test_an_artifact_calling_a_dangerous_function_is_refused_naming_it(
    name, data_scientist, registered_model, train_csv, eval_csv, media_root
):
    with pytest.raises(SubmissionInvalid) as refused:
        make_version(data_scientist, registered_model, REFUSED[name](), train_csv, eval_csv)
    message = " ".join(refused.value.errors["artifact"])
    assert f"not on the allow-list: {name}." in message
    assert ModelVersion.objects.count() == 0
    assert stored_files(media_root) == []


def test_the_refusal_names_only_what_is_not_listed():
    with pytest.raises(ArtifactRefused) as refused:
        services.inspect_artifact(_pipeline_calling(np.load, allow_pickle=True))
    assert refused.value.code == "untrusted_types"
    assert refused.value.details == {"untrusted_types": ["numpy.load"]}


def test_the_crafted_file_would_really_have_called_os_system():
    """Why the names matter: skops, told to trust the name, hands back os.system itself."""
    crafted = _log1p_pipeline_pointing_at("os", "system")
    assert "os.system" in sio.get_untrusted_types(data=crafted)
    assert sio.loads(crafted, trusted=["os.system"]).steps[0][1].func is os.system


def test_a_random_generator_is_checked_by_its_bit_generator_name_too():
    """skops keeps the bit generator's name inside the Generator's state and calls
    numpy.random.<name>: the name must be on the list like any other."""
    model = HistGradientBoostingClassifier(max_iter=2).fit(X, Y_CLASS)
    assert "numpy.random.PCG64" in inspect_artifact(sio.dumps(model)).types

    def edit(schema: dict[str, Any]) -> None:
        for node in _nodes(schema):
            if node.get("__loader__") == "JsonNode" and node.get("content") == '"PCG64"':
                node["content"] = '"default_rng"'

    with pytest.raises(ArtifactRefused, match=r"numpy\.random\.default_rng"):
        inspect_artifact(_rewrite_schema(sio.dumps(model), edit))


# --- the list itself -----------------------------------------------------------------------
def test_every_listed_name_is_a_real_object_of_the_installed_libraries():
    for name in allowlist.ALLOWED_TYPES:
        module, _, attribute = name.rpartition(".")
        assert hasattr(importlib.import_module(module), attribute), name


def test_the_cython_loss_alias_skops_writes_is_scikit_learns_module():
    import sklearn._loss._loss

    assert sys.modules["_loss"] is sklearn._loss._loss


def test_nothing_that_reads_files_runs_code_or_imports_is_listed():
    dangerous_modules = ("os.", "posix.", "subprocess.", "importlib.", "pickle.", "numpy.testing.", "numpy.lib.")
    dangerous = {"builtins.eval", "builtins.exec", "builtins.compile", "builtins.open", "builtins.__import__"}
    dangerous |= {"builtins.getattr", "builtins.type", "numpy.load", "numpy.loadtxt", "numpy.fromfile"}
    assert not dangerous & allowlist.ALLOWED_TYPES
    assert not [name for name in allowlist.ALLOWED_TYPES if name.startswith(dangerous_modules)]


def test_the_functions_are_a_short_list_each_with_its_reason():
    assert len(allowlist.SAFE_FUNCTIONS) <= 30
    assert all(len(why) > 10 for why in allowlist.SAFE_FUNCTIONS.values())


# --- accepted ------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_demo_models_are_accepted(data_scientist, registered_model, german, train_csv, eval_csv):
    for model in (demo_data.train_logistic_regression(german[0]), demo_data.train_random_forest(german[0])):
        version = make_version(data_scientist, registered_model, sio.dumps(model), train_csv, eval_csv)
        assert version.estimator_class == "sklearn.pipeline.Pipeline"
        assert set(version.artifact_types) <= allowlist.ALLOWED_TYPES


def _tabular(final: Any) -> Pipeline:
    prepare = ColumnTransformer(
        [("numeric", StandardScaler(), ["a", "b", "c", "d"]), ("categorical", OneHotEncoder(), ["s"])]
    )
    return Pipeline([("prepare", prepare), ("model", final)])


REPRESENTATIVE: dict[str, Callable[[], Any]] = {
    "column transformer, one-hot, scaler": lambda: _tabular(LogisticRegression()).fit(FRAME, Y_CLASS),
    "column selectors": lambda: make_pipeline(
        ColumnTransformer(
            [
                ("numeric", StandardScaler(), make_column_selector(dtype_include="number")),
                ("categorical", OneHotEncoder(handle_unknown="ignore"), make_column_selector(dtype_include=object)),
            ]
        ),
        SGDClassifier(),
    ).fit(FRAME, Y_CLASS),
    "hist gradient boosting, categorical": lambda: HistGradientBoostingClassifier(
        max_iter=10, categorical_features="from_dtype"
    ).fit(FRAME.astype({"s": "category"}), Y_CLASS),
    "hist gradient boosting regressor": lambda: HistGradientBoostingRegressor(max_iter=10, loss="poisson").fit(
        X, Y_VALUE
    ),
    "gradient boosting": lambda: GradientBoostingClassifier(n_estimators=10).fit(X, Y_CLASS),
    "gradient boosting regressor, huber": lambda: GradientBoostingRegressor(n_estimators=10, loss="huber").fit(
        X, Y_VALUE
    ),
    "label spreading": lambda: LabelSpreading().fit(X, np.where(RNG.rand(60) < 0.5, -1, Y_CLASS)),
    "function transformer log1p": lambda: make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()).fit(
        X, Y_CLASS
    ),
    "transformed target log1p/expm1": lambda: TransformedTargetRegressor(
        regressor=Ridge(), func=np.log1p, inverse_func=np.expm1
    ).fit(X, Y_VALUE),
    "splines": lambda: make_pipeline(SplineTransformer(), LogisticRegression()).fit(X, Y_CLASS),
    "k-neighbours, kd tree": lambda: KNeighborsClassifier(algorithm="kd_tree").fit(X, Y_CLASS),
    "MLP": lambda: MLPClassifier(max_iter=50).fit(X, Y_CLASS),
    "gaussian process": lambda: GaussianProcessClassifier().fit(X, Y_CLASS),
    "calibrated": lambda: CalibratedClassifierCV(LogisticRegression()).fit(X, Y_CLASS),
    "grid search, roc_auc": lambda: GridSearchCV(LogisticRegression(), {"C": [0.1, 1]}, scoring="roc_auc").fit(
        X, Y_CLASS
    ),
    "tuned threshold": lambda: TunedThresholdClassifierCV(LogisticRegression()).fit(X, Y_CLASS),
    "stacking": lambda: StackingClassifier([("lr", LogisticRegression()), ("tree", DecisionTreeClassifier())]).fit(
        X, Y_CLASS
    ),
    "iterative imputer": lambda: make_pipeline(IterativeImputer(), LogisticRegression()).fit(
        np.where(X > 0.9, np.nan, X), Y_CLASS
    ),
    "k-best, agglomeration, bisecting k-means": lambda: make_pipeline(
        FeatureAgglomeration(n_clusters=3), BisectingKMeans(n_clusters=3), SelectKBest(k=2), LogisticRegression()
    ).fit(X, Y_CLASS),
    "SVC on a sparse matrix": lambda: SVC().fit(sp.csr_matrix(X), Y_CLASS),
}


@pytest.mark.parametrize("kind", REPRESENTATIVE)
def test_a_representative_model_is_accepted(kind):
    inspected = inspect_artifact(sio.dumps(REPRESENTATIVE[kind]()))
    assert inspected.task in {"classification", "regression"}


def _with_defaults(cls: type, base: Any) -> Any:
    """Default parameters, plus the base estimator(s) a meta-estimator cannot do without."""
    params = inspect.signature(cls).parameters
    if "estimators" in params:
        return cls(estimators=[("one", clone(base)), ("two", clone(base))])
    if "estimator" in params and (
        params["estimator"].default is inspect.Parameter.empty or cls.__name__ == "SelfTrainingClassifier"
    ):
        return cls(estimator=clone(base))
    return cls()


def test_every_quickly_fitted_classifier_and_regressor_is_accepted():
    """scikit-learn's classifiers and regressors with default parameters on a small numeric set
    (HistGradientBoosting is slow by default and has its own cases above)."""
    accepted, refused = [], {}
    for kind, y, base in (("classifier", Y_CLASS, LogisticRegression()), ("regressor", Y_VALUE, Ridge())):
        for name, cls in all_estimators(type_filter=kind):
            if name.startswith("HistGradientBoosting"):
                continue
            model = _with_defaults(cls, base)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(X, y)
            except (ValueError, IndexError):  # needs another kind of data (multi-output, 1-D, ...)
                continue
            try:
                inspect_artifact(sio.dumps(model))
                accepted.append(name)
            except ArtifactRefused as exc:
                refused[name] = exc.message
    assert refused == {}
    assert len(accepted) >= 80, accepted


# --- HistGradientBoosting's trees are checked like decision trees ---------------------------
def _hist_gradient_boosting_with(field: str, value: int) -> bytes:
    model = HistGradientBoostingClassifier(max_iter=3).fit(X, Y_CLASS)
    predictor = model._predictors[0][0]
    nodes = predictor.nodes.copy()
    nodes[field][np.flatnonzero(nodes["is_leaf"] == 0)[0]] = value
    predictor.nodes = nodes
    return sio.dumps(model)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("left", 10_000, "child index is out of range"),
        ("right", 0, "child index is out of range"),  # a cycle back to the root
        ("feature_idx", 40, "split feature index is out of range"),
        ("is_categorical", 1, "category bitset index is out of range"),  # this model has no bitsets
    ],
)
def test_a_hist_gradient_boosting_tree_with_bad_indices_is_refused(field, value, problem):
    with pytest.raises(ArtifactRefused, match=problem):
        inspect_artifact(_hist_gradient_boosting_with(field, value))


def test_a_categorical_split_on_a_numeric_feature_is_refused():
    """The known-category bitsets have rows for categorical features only."""
    features = np.c_[X, Y_CLASS * 2 + RNG.randint(0, 2, 60)]
    model = HistGradientBoostingClassifier(max_iter=3, categorical_features=[4]).fit(features, Y_CLASS)
    predictor = model._predictors[0][0]
    nodes = predictor.nodes.copy()
    split = np.flatnonzero((nodes["is_leaf"] == 0) & (nodes["is_categorical"] == 1))[0]
    nodes["feature_idx"][split] = np.flatnonzero(model._bin_mapper.is_categorical_ == 0)[0]
    predictor.nodes = nodes
    with pytest.raises(ArtifactRefused, match="not known as categorical"):
        inspect_artifact(sio.dumps(model))


def test_a_text_vectorizer_that_opens_the_files_named_in_its_input_is_refused() -> None:
    import skops.io as sio
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from lifecycle.artifacts import ArtifactRefused, inspect_artifact

    texts, labels = ["good loan", "bad loan", "good payer", "bad payer"], [1, 0, 1, 0]
    safe = make_pipeline(CountVectorizer(), LogisticRegression()).fit(texts, labels)
    assert inspect_artifact(sio.dumps(safe)).task == "classification"
    reads = make_pipeline(CountVectorizer(), LogisticRegression()).fit(texts, labels)
    reads.set_params(countvectorizer__input="filename")
    with pytest.raises(ArtifactRefused, match="countvectorizer__input='filename'"):
        inspect_artifact(sio.dumps(reads))


def test_a_multi_output_classifier_is_refused_with_a_message_not_a_500() -> None:
    import numpy as np
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.multioutput import ClassifierChain

    from lifecycle.artifacts import ArtifactRefused, inspect_artifact

    X = np.random.RandomState(0).rand(40, 3)
    model = ClassifierChain(LogisticRegression()).fit(X, (X > 0.5).astype(int))
    with pytest.raises(ArtifactRefused, match="ClassifierChain predicts several outputs"):
        inspect_artifact(sio.dumps(model))
