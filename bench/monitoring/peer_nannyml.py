"""NannyML, run by bench/monitoring/run.py in bench/.nannyml-venv (not a project dependency).

    peer_nannyml.py DATA_DIR main|replay

UnivariateDriftCalculator with its default methods (Jensen-Shannon distance for continuous and
categorical columns) and default thresholds (StandardDeviationThreshold: mean + 3 standard
deviations of the method's values over the reference's chunks); the column types are given.

main: fitted on the reference with NannyML's default chunker (10 chunks), which is where its
thresholds come from; then the current set is scored as one chunk (the chunker is replaced by a
SizeBasedChunker of the current set's size after fitting). Fitting with a single reference chunk
would give a threshold of 0 (the standard deviation of one value), flagging every column.
replay: chunks of 10,000 rows for both, the way NannyML is meant to be run over time: fitted on
the reference, then 100 chunks of fresh rows of the reference's own distribution.

Times only the drift computation (fit + calculate, frames already in memory; reading the files
and importing NannyML are not timed). Prints one JSON line."""

from __future__ import annotations

import json
import sys
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

REPLAY_ROWS = 10_000
METHOD = "jensen_shannon"


def frame(path: Path) -> pd.DataFrame:
    with np.load(path, allow_pickle=False) as data:
        return pd.DataFrame({name: data[name] for name in data.files})


def main() -> None:
    import nannyml as nml
    from nannyml.chunk import SizeBasedChunker

    warnings.simplefilter("ignore")  # "The resulting number of chunks is too low" for the one chunk
    out, mode = Path(sys.argv[1]), sys.argv[2]
    layout = json.loads((out / "layout.json").read_text())
    columns = layout["numeric"] + layout["categorical"]
    reference = frame(out / "reference.npz")
    current = frame(out / ("current.npz" if mode == "main" else "fresh.npz"))
    options = {"chunk_size": REPLAY_ROWS} if mode == "replay" else {}
    started = time.perf_counter()
    calculator = nml.UnivariateDriftCalculator(
        column_names=columns,
        treat_as_numerical=layout["numeric"],
        treat_as_categorical=layout["categorical"],
        **options,
    )
    calculator.fit(reference)
    fitted = time.perf_counter()
    if mode == "main":
        calculator.chunker = SizeBasedChunker(chunk_size=len(current), incomplete="keep")
    results = calculator.calculate(current)
    done = time.perf_counter()
    table = results.filter(period="analysis").to_df()
    alerts = {name: [bool(v) for v in table[(name, METHOD, "alert")]] for name in columns}
    result = {
        "tool": "nannyml",
        "version": version("nannyml"),
        "mode": mode,
        "seconds": done - started,
        "fit_seconds": fitted - started,
        "calculate_seconds": done - fitted,
        "chunks": len(table),
    }
    if mode == "main":
        result["flagged"] = [name for name in columns if any(alerts[name])]
        result["scores"] = {name: float(table[(name, METHOD, "value")].iloc[0]) for name in columns}
        result["methods"] = {name: METHOD for name in columns}
        thresholds = {name: float(table[(name, METHOD, "upper_threshold")].iloc[0]) for name in columns}
        result["thresholds"] = thresholds
        result["note"] = (
            f"fit {result['fit_seconds']:.1f} s + calculate {result['calculate_seconds']:.1f} s; "
            f"thresholds {min(thresholds.values()):.4f}-{max(thresholds.values()):.4f}"
        )
    else:
        result["flagged_count"] = sum(sum(v) for v in alerts.values())
        result["column_windows"] = len(table) * len(columns)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
