"""The reference profile a version's monitoring compares with: the profile of its current review
round (the one its approval bound), and the reference values KS reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core import caches
from core.canonical import sha256_json
from governance import profile
from governance.models import CheckKind, CheckRun
from lifecycle.dataset_store import open_dataset
from lifecycle.models import Dataset, ModelVersion


# --- the reference profile -------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    version_id: int
    profile: dict[str, Any]
    sha256: str
    schema: dict[str, str]
    task: str
    classes: list[Any]


_references: dict[tuple[int, int, int, str], Reference] = {}


def reference_of(version: ModelVersion) -> Reference | None:
    """The profile of the version's current review round (the one its approval bound). Kept by
    the process per finished check run (a fold and the window after it read it once): reading
    it parses up to 50,000 values per feature and hashes them."""
    found = (
        CheckRun.objects.filter(version=version, round=version.review_round, kind=CheckKind.PROFILE)
        .values_list("pk", "finished_at")
        .first()
    )
    if found is None or found[1] is None:
        return None
    key = (version.pk, version.review_round, found[0], found[1].isoformat())
    if key in _references:
        return _references[key]
    metrics = CheckRun.objects.values_list("metrics", flat=True).get(pk=found[0])
    if "profile" not in metrics:
        return None
    built = metrics["profile"]
    reference = Reference(
        version.pk,
        built,
        sha256_json(built),
        {c["name"]: c["dtype"] for c in version.input_schema},
        version.task,
        list(version.classes or []),
    )
    if len(_references) >= 32:
        _references.clear()
    _references[key] = reference
    return reference


def forget_references() -> None:
    _references.clear()


caches.register("monitoring.reference.references", forget_references)


def _reference_values(version: ModelVersion) -> pd.DataFrame:
    dataset: Dataset = version.evaluation_dataset
    with open_dataset(dataset) as handle:
        return pd.read_csv(handle, skipinitialspace=True)


def reference_sample(
    version: ModelVersion, name: str, entry: dict[str, Any], cache: dict[str, pd.DataFrame]
) -> np.ndarray:
    """The reference values KS compares with: kept with the profile; for profiles made before
    that, read once from the evaluation data."""
    if "values" in entry:
        return np.asarray(entry["values"], dtype=float)
    if "evaluation" not in cache:
        cache["evaluation"] = _reference_values(version)
    evaluation = cache["evaluation"]
    return profile.numeric_values(evaluation[name].tolist()) if name in evaluation else np.array([])
