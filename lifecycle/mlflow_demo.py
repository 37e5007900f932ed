"""The demo's MLflow import: the model directory shipped in lifecycle/demo_mlflow (made by MLflow 3
with skops), imported as a draft through the same service as the command."""

from __future__ import annotations

from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile

from core.actors import Actor
from lifecycle.mlflow_import import Source, import_mlflow_model
from lifecycle.models import MlflowImport
from lifecycle.submission import DatasetChoice

# The MLflow model and the German credit split it was trained on (first 700 rows) and is
# evaluated on (the other 300), as files a new user can pass to `import_mlflow_model` too.
DEMO_MLFLOW = Path(__file__).resolve().parent / "demo_mlflow"
MLFLOW_DEMO_MODEL = "credit-mlflow"


def _csv(name: str) -> DatasetChoice:
    return DatasetChoice(upload=SimpleUploadedFile(name, (DEMO_MLFLOW / name).read_bytes(), content_type="text/csv"))


def seed_mlflow_demo(*, actor: Actor) -> str:
    """Import the shipped MLflow model as a draft of `credit-mlflow` created by `actor` (a data
    scientist); does nothing if the demo's import is already there. Returns a summary."""
    done = MlflowImport.objects.filter(version__registered_model__name=MLFLOW_DEMO_MODEL).first()
    if done is not None:
        return f"MLflow import already loaded: {done.version}"
    version = import_mlflow_model(
        actor=actor,
        source=Source(directory=DEMO_MLFLOW / "credit-skops"),
        model_name=MLFLOW_DEMO_MODEL,
        training=_csv("german-credit-train.csv"),
        evaluation=_csv("german-credit-eval.csv"),
        label_column="risk",
        sensitive_features=["sex", "age_group"],
        title="Consumer credit risk (trained in MLflow)",
        risk_tier="medium",
        source_path="lifecycle/demo_mlflow/credit-skops",
    )
    return f"Imported {version} from MLflow as a draft (run {version.mlflow_import.run_id})."
