"""Save the same two models (same code, same seeds, same training rows) as MLflow models.
Runs inside bench/.mlflow-venv, which has MLflow; MLflow is not a project dependency."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import mlflow.sklearn
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from lifecycle import demo_data  # noqa: E402  (pure scikit-learn code, no Django)

out = Path(sys.argv[1])
train = pd.read_csv(out / "train.csv")
for name, model in (
    ("bench-rf", demo_data.train_random_forest(train, n_estimators=100)),
    ("bench-logreg", demo_data.train_logistic_regression(train)),
):
    target = out / "mlflow" / name
    if not (target / "MLmodel").exists():
        shutil.rmtree(target, ignore_errors=True)
        # Our own freshly trained trees: trusted explicitly, as MLflow asks.
        mlflow.sklearn.save_model(model, str(target), skops_trusted_types=["sklearn.tree._tree.Tree"])
