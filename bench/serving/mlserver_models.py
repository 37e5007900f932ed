"""Save the same two models (same code, same seeds, same training rows) for Seldon MLServer: a
model repository with, per model, `model.joblib` and a `model-settings.json` naming
mlserver-sklearn's SKLearnModel. Runs inside bench/.mlserver-venv; MLServer is not a project
dependency. run.py writes the repository's settings.json (ports, parallel workers) at each start."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import joblib
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from lifecycle import demo_data  # noqa: E402  (pure scikit-learn code, no Django)

out = Path(sys.argv[1])
train = pd.read_csv(out / "train.csv")
for name, model in (
    ("bench-rf", demo_data.train_random_forest(train, n_estimators=100)),
    ("bench-logreg", demo_data.train_logistic_regression(train)),
):
    target = out / "mlserver" / name
    target.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, target / "model.joblib")
    settings = {
        "name": name,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib"},
    }
    (target / "model-settings.json").write_text(json.dumps(settings, indent=2) + "\n")
