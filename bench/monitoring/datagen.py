"""The monitoring benchmark's data: 16 features of a credit application (12 numeric, 4
categorical) drawn from fixed distributions with fixed seeds, and a 0/1 label.

- reference: the model's evaluation data (features and label), the distribution as approved;
- current: the same distributions, except `score` shifted by SHIFT_SIGMA of its standard
  deviation and `channel`'s rarest category ('partner') moved from 10% to 10% + CATEGORY_SHIFT
  of the rows (the other channels scaled down in proportion);
- fresh: more rows of the reference's own distribution (the no-drift replay).

Only numpy: the peers' virtualenvs read what run.py writes from these arrays (.npz)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

# BENCH_SHIFT_SIGMA and BENCH_CATEGORY_SHIFT change the two shifts (to see where PSI crosses 0.10).
SHIFT_SIGMA = float(os.environ.get("BENCH_SHIFT_SIGMA", "0.3"))
CATEGORY_SHIFT = float(os.environ.get("BENCH_CATEGORY_SHIFT", "0.10"))
SHIFTED_NUMERIC = "score"
SHIFTED_CATEGORICAL = "channel"
SHIFTED = [SHIFTED_NUMERIC, SHIFTED_CATEGORICAL]
LABEL = "default"

SCORE_MEAN, SCORE_SD = 650.0, 80.0
NUMERIC = [
    "age",
    "income",
    "credit_amount",
    "duration_months",
    "utilization",
    "debt_ratio",
    "tenure_years",
    "n_accounts",
    "inquiries",
    "score",
    "balance",
    "payment_ratio",
]
CATEGORIES = {
    "region": (["north", "south", "east", "west", "central"], [0.30, 0.25, 0.20, 0.15, 0.10]),
    "channel": (["branch", "online", "phone", "partner"], [0.40, 0.30, 0.20, 0.10]),
    "product": (["card", "loan", "mortgage"], [0.50, 0.30, 0.20]),
    "employment": (["employed", "self_employed", "retired", "student", "unemployed"], [0.60, 0.20, 0.10, 0.05, 0.05]),
}
CATEGORICAL = list(CATEGORIES)
FEATURES = NUMERIC + CATEGORICAL
SEEDS = {"train": 11, "reference": 12, "current": 13, "fresh": 14}


def _numeric(rng: np.random.Generator, n: int, score_shift: float) -> dict[str, np.ndarray]:
    return {
        "age": np.round(rng.normal(45, 12, n), 1),
        "income": np.round(rng.lognormal(10.8, 0.5, n), 0),
        "credit_amount": np.round(rng.lognormal(9.0, 0.8, n), 0),
        "duration_months": np.round(rng.gamma(4.0, 6.0, n), 1),
        "utilization": np.round(rng.beta(2, 5, n), 4),
        "debt_ratio": np.round(rng.beta(3, 7, n), 4),
        "tenure_years": np.round(rng.exponential(5.0, n), 2),
        "n_accounts": rng.poisson(4.0, n).astype(np.int64),
        "inquiries": rng.poisson(1.2, n).astype(np.int64),
        "score": np.round(rng.normal(SCORE_MEAN + score_shift * SCORE_SD, SCORE_SD, n), 1),
        "balance": np.round(rng.normal(5000, 1500, n), 2),
        "payment_ratio": np.round(rng.normal(0.5, 0.15, n), 4),
    }


def channel_shares(shift: float) -> list[float]:
    """'partner' (the last, 10%) gains `shift` of the rows; the others lose it in proportion."""
    shares = np.asarray(CATEGORIES["channel"][1], dtype=float)
    if shift:
        rest = shares[:-1] * (1 - (shares[-1] + shift)) / shares[:-1].sum()
        shares = np.append(rest, shares[-1] + shift)
    return [float(s) for s in shares]


def draw(n: int, *, seed: int, shifted: bool = False) -> dict[str, np.ndarray]:
    """n rows of the 16 features and the label (columns as arrays; categories as str arrays)."""
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = _numeric(rng, n, SHIFT_SIGMA if shifted else 0.0)
    for name, (values, shares) in CATEGORIES.items():
        if name == SHIFTED_CATEGORICAL and shifted:
            shares = channel_shares(CATEGORY_SHIFT)
        columns[name] = np.asarray(values)[rng.choice(len(values), size=n, p=shares)]
    # The label depends on a few features (a model with something to learn).
    z = (
        -1.2
        - 0.012 * (columns["score"] - SCORE_MEAN)
        + 1.8 * columns["utilization"]
        + 1.5 * columns["debt_ratio"]
        + 0.25 * columns["inquiries"]
        - 0.015 * (columns["age"] - 45)
        + 0.4 * (columns["employment"] == "unemployed")
        + 0.2 * (columns["channel"] == "partner")
    )
    columns[LABEL] = (rng.random(n) < 1 / (1 + np.exp(-1.6 * z))).astype(np.int64)
    return columns


def save(path: Path, columns: dict[str, np.ndarray]) -> None:
    """Features only, as arrays (no pickle): what the peers read."""
    np.savez(path, **{name: columns[name] for name in FEATURES})


def load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def write_layout(path: Path) -> None:
    path.write_text(
        json.dumps(
            {
                "numeric": NUMERIC,
                "categorical": CATEGORICAL,
                "shifted": SHIFTED,
            }
        )
    )
