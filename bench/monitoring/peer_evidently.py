"""Evidently, run by bench/monitoring/run.py in bench/.evidently-venv (not a project dependency).

    peer_evidently.py DATA_DIR default|psi|replay [WINDOWS]

default: Report([DataDriftPreset()]), every default (per column Evidently picks the test from the
column's type and size: over 1,000 rows, normed Wasserstein distance for numeric columns and
Jensen-Shannon distance for categorical ones, threshold 0.1). psi: DataDriftPreset(method="psi"),
the preset's way to set one stattest for every column (its default threshold, 0.1). The column
types are given (DataDefinition), not guessed. `include_tests=True` only makes the report state
each column's drift verdict (the test that ValueDrift itself computes), which is what is read.

Times only the drift computation: Dataset.from_pandas of both frames and Report.run, with the
frames already in memory (reading the files and importing Evidently are not timed). replay: the
default preset on WINDOWS fresh windows of 10,000 rows of the reference's own distribution.
Prints one JSON line."""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

REPLAY_ROWS = 10_000


def frame(path: Path) -> pd.DataFrame:
    with np.load(path, allow_pickle=False) as data:
        return pd.DataFrame({name: data[name] for name in data.files})


def drift(reference: pd.DataFrame, current: pd.DataFrame, layout: dict, method: str | None) -> dict:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=layout["numeric"], categorical_columns=layout["categorical"])
    preset = DataDriftPreset() if method is None else DataDriftPreset(method=method)
    started = time.perf_counter()
    snapshot = Report([preset], include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    seconds = time.perf_counter() - started
    data = snapshot.dict()
    scores, methods = {}, {}
    for metric in data["metrics"]:
        config = metric.get("config", {})
        if str(config.get("type", "")).endswith("ValueDrift"):
            scores[config["column"]] = float(metric["value"])
            methods[config["column"]] = config.get("method")
    flagged = [
        test["metric_config"]["params"]["column"]
        for test in data.get("tests", [])
        if test.get("id") == "drift" and test.get("status") == "FAIL"
    ]
    return {"seconds": seconds, "flagged": flagged, "scores": scores, "methods": methods}


def main() -> None:
    out, mode = Path(sys.argv[1]), sys.argv[2]
    layout = json.loads((out / "layout.json").read_text())
    reference = frame(out / "reference.npz")
    result: dict = {"tool": "evidently", "version": version("evidently"), "mode": mode}
    if mode in ("default", "psi"):
        current = frame(out / "current.npz")
        result.update(drift(reference, current, layout, None if mode == "default" else "psi"))
    else:
        windows = int(sys.argv[3]) if len(sys.argv) > 3 else 100
        fresh = frame(out / "fresh.npz")
        flagged, seconds = 0, 0.0
        for w in range(windows):
            one = drift(reference, fresh.iloc[w * REPLAY_ROWS : (w + 1) * REPLAY_ROWS], layout, None)
            flagged += len(one["flagged"])
            seconds += one["seconds"]
        columns = len(layout["numeric"]) + len(layout["categorical"])
        result.update(
            {"windows": windows, "flagged_count": flagged, "column_windows": windows * columns, "seconds": seconds}
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
