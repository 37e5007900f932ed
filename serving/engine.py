"""Loaded models, once per process, kept by version and hash. The engine is ONNX Runtime when
the version's ONNX check passed (identical labels, probabilities within 1e-5), the skops model
otherwise. Every load re-checks the stored file's SHA-256 (skops through
lifecycle.services.load_version_model)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from django.core.files.storage import default_storage
from django.db import transaction

from core import audit, caches
from governance import integrity, manifest
from governance.models import CheckRun
from governance.selectors import onnx_check
from lifecycle import onnx_model
from lifecycle.artifacts import sha256_of
from lifecycle.errors import ArtifactIntegrityError
from lifecycle.models import ModelVersion
from lifecycle.services import load_version_model
from serving.errors import ServingError
from serving.inputs import to_frame, to_tensors

# Classifiers whose predict() is exactly classes_[argmax(predict_proba())] in scikit-learn, so
# one pass through the pipeline gives both (halving the cost of the skops engine).
ARGMAX_CLASSIFIERS = {
    "RandomForestClassifier",
    "ExtraTreesClassifier",
    "DecisionTreeClassifier",
    "ExtraTreeClassifier",
    "GradientBoostingClassifier",
    "HistGradientBoostingClassifier",
    "LogisticRegression",
}


def _final_estimator(model: Any) -> Any:
    while hasattr(model, "steps"):
        model = model.steps[-1][1]
    return model


@dataclass
class Loaded:
    engine: str
    model: Any = None
    session: Any = None
    argmax_labels: bool = False


@dataclass
class Prediction:
    labels: list[Any]
    probabilities: list[list[float]] | None
    engine: str
    # the inputs as the engine took them (ONNX: [N, 1] arrays per column; skops: the frame), so
    # that explaining the same rows does not build them again
    tensors: dict[str, np.ndarray] | None = None
    frame: pd.DataFrame | None = None


_cache: dict[tuple[int, str, int, str], Loaded] = {}
_lock = threading.Lock()


def _load_onnx(version: ModelVersion, check: CheckRun) -> Any:
    with default_storage.open(check.metrics["onnx_file"], "rb") as handle:
        data = handle.read()
    if sha256_of(data) != check.metrics["onnx_sha256"]:
        error = ArtifactIntegrityError(
            f"The stored ONNX file of {version} no longer has the SHA-256 its check recorded; it will not be loaded.",
            details={"expected_sha256": check.metrics["onnx_sha256"], "actual_sha256": sha256_of(data)},
        )
        with transaction.atomic():
            audit.record(audit.ARTIFACT_TAMPERED, actor=None, target=version, data=error.details, prove_target=False)
        raise error
    return onnx_model.session(data)


def _require_manifest(version: ModelVersion) -> None:
    """A version is loaded only when the manifest recomputed from the stored rows is the one its
    approvals bound (docs/ledger.md); otherwise it is suspended now and refused."""
    if not version.manifest_sha256:
        return  # approved before manifests existed: bound by its approvals' hashes only
    if manifest.sha256(manifest.stored_version(version.pk)) == version.manifest_sha256:
        return
    integrity.suspend_void_versions(model_id=version.registered_model_id)
    raise ServingError(
        f"{version.registered_model.name} v{version.version} is not served: its version manifest no longer "
        "matches what its approvals bound, and it was suspended.",
        status=403,
        code="version_not_servable",
        details={"status": "suspended", "reason": "manifest_changed"},
    )


def loaded(version: ModelVersion) -> Loaded:
    # Checks of a round never change once finished, and approved versions cannot start a new
    # round, so (version, artifact hash, round, manifest) identifies what to run.
    key = (version.pk, version.artifact_sha256, version.review_round, version.manifest_sha256)
    found = _cache.get(key)
    if found is None:
        with _lock:
            found = _cache.get(key)
            if found is None:
                _require_manifest(version)
                check = onnx_check(version)
                if check is not None:
                    found = Loaded("onnx", session=_load_onnx(version, check))
                else:
                    model = load_version_model(version)
                    final = type(_final_estimator(model)).__name__
                    found = Loaded("skops", model=model, argmax_labels=final in ARGMAX_CLASSIFIERS)
                _cache[key] = found
    return found


def predict(version: ModelVersion, rows: list[dict[str, Any]]) -> Prediction:
    """Predict checked rows with the version's engine (ONNX Runtime takes arrays, skops a frame)."""
    runtime = loaded(version)
    if runtime.engine == "onnx":
        return _onnx(version, runtime, to_tensors(rows, version.input_schema))
    return _skops(version, runtime, to_frame(rows, version.input_schema))


def predict_frame(version: ModelVersion, frame: pd.DataFrame) -> FramePrediction:
    """The same for rows already in columns with the schema's types (batch chunks): no row dicts."""
    runtime = loaded(version)
    if runtime.engine == "onnx":
        tensors = {
            c["name"]: frame[c["name"]].to_numpy(dtype=object if c["dtype"] == "string" else np.float64).reshape(-1, 1)
            for c in version.input_schema
        }
        labels, probabilities = onnx_model.run_tensors(runtime.session, tensors)
    else:
        labels, probabilities = _skops_arrays(version, runtime, frame[[c["name"] for c in version.input_schema]])
    return FramePrediction(
        labels=labels if labels.dtype == np.int64 else labels.tolist(),
        probabilities=np.ascontiguousarray(probabilities, dtype=np.float64)
        if probabilities is not None and version.task == "classification"
        else None,
        engine=runtime.engine,
    )


@dataclass
class FramePrediction:
    """predict_frame()'s answer, kept in arrays: the probabilities (float64, C order) and int64
    labels (other labels as Python values: texts, and floats whose result text is their repr).
    A chunk's 100,000 Python floats cost mostly garbage-collector time, and the log and the
    result write the arrays exactly as they wrote those floats (orjson)."""

    labels: list[Any] | np.ndarray
    probabilities: np.ndarray | None
    engine: str


def _onnx(version: ModelVersion, runtime: Loaded, tensors: dict[str, np.ndarray]) -> Prediction:
    labels, probabilities = onnx_model.run_tensors(runtime.session, tensors)
    return Prediction(
        labels=labels.tolist(),
        probabilities=probabilities.tolist()
        if probabilities is not None and version.task == "classification"
        else None,
        engine="onnx",
        tensors=tensors,
    )


def _skops(version: ModelVersion, runtime: Loaded, frame: pd.DataFrame) -> Prediction:
    labels, proba = _skops_arrays(version, runtime, frame)
    return Prediction(
        labels=labels.tolist(), probabilities=proba.tolist() if proba is not None else None, engine="skops", frame=frame
    )


def _skops_arrays(version: ModelVersion, runtime: Loaded, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    model = runtime.model
    if version.task == "classification" and hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(frame), dtype=float)
        if runtime.argmax_labels:
            labels = np.asarray(model.classes_).take(np.argmax(proba, axis=1))
        else:
            labels = np.asarray(model.predict(frame))
        return labels, proba
    return np.asarray(model.predict(frame)), None


def clear_cache() -> None:
    with _lock:
        _cache.clear()


caches.register("serving.engine.models", clear_cache)
