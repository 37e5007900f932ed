"""Loaded models, once per process, kept by version and artifact hash. Loading goes through
lifecycle.services.load_version_model (hash re-checked, allow-list applied)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lifecycle.models import ModelVersion
from lifecycle.services import load_version_model

_cache: dict[tuple[int, str], Any] = {}
_lock = threading.Lock()


@dataclass
class Prediction:
    labels: list[Any]
    probabilities: list[list[float]] | None
    engine: str


def loaded_model(version: ModelVersion) -> Any:
    key = (version.pk, version.artifact_sha256)
    model = _cache.get(key)
    if model is None:
        with _lock:
            model = _cache.get(key)
            if model is None:
                model = load_version_model(version)
                _cache[key] = model
    return model


def _native(values: np.ndarray) -> list[Any]:
    return values.tolist()


def predict(version: ModelVersion, frame: pd.DataFrame) -> Prediction:
    model = loaded_model(version)
    labels = _native(np.asarray(model.predict(frame)))
    probabilities = None
    if version.task == "classification" and hasattr(model, "predict_proba"):
        probabilities = np.asarray(model.predict_proba(frame), dtype=float).tolist()
    return Prediction(labels=labels, probabilities=probabilities, engine="skops")


def clear_cache() -> None:
    with _lock:
        _cache.clear()
