"""The drift numbers equal their definitions (docs/design.md, "Monitoring"), computed here independently."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from governance import profile
from monitoring import drift


def independent_psi(reference: np.ndarray, current: np.ndarray) -> float:
    edges = sorted(set(np.quantile(reference, [i / 10 for i in range(1, 10)]).tolist()))

    def shares(values: np.ndarray) -> list[float]:
        bins = [0] * (len(edges) + 1)
        for v in values:
            i = 0
            while i < len(edges) and v > edges[i]:  # bins (-inf, e1], (e1, e2], ..., (ek, inf)
                i += 1
            bins[i] += 1
        return [b / len(values) for b in bins]

    total = 0.0
    for e, a in zip(shares(reference), shares(current), strict=True):
        e, a = e or 0.0001, a or 0.0001
        total += (a - e) * math.log(a / e)
    return total


def test_numeric_bins_are_the_unique_deciles_of_the_reference():
    reference = np.array([1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 7.5], dtype=float)
    entry = profile.feature_profile(reference.tolist(), "float64")
    assert entry["edges"] == sorted(set(np.quantile(reference, profile.DECILES).tolist()))
    assert sum(entry["counts"]) == len(reference)
    assert entry["counts"][-1] == 0  # no missing values
    # a value equal to an edge falls in the bin that edge closes: (-inf, 1] holds the five 1s
    assert entry["counts"][0] == 5


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
def test_psi_and_ks_equal_their_definitions(shift):
    rng = np.random.default_rng(3)
    reference = rng.normal(size=2000)
    current = rng.normal(loc=shift, size=1500)
    entry = profile.feature_profile(reference.tolist(), "float64")
    counts = profile.count_numeric(current, entry["edges"])
    assert drift.psi(entry["counts"], counts) == pytest.approx(independent_psi(reference, current), abs=1e-9)
    statistic, pvalue = drift.ks(reference, current)
    expected = stats.ks_2samp(reference, current)
    assert statistic == pytest.approx(float(expected.statistic), abs=1e-9)
    assert pvalue == pytest.approx(float(expected.pvalue), abs=1e-9)


def test_categorical_psi_counts_unseen_categories_in_their_own_bin():
    reference = ["a"] * 50 + ["b"] * 50
    entry = profile.feature_profile(reference, "object")
    assert entry["categories"] == ["a", "b"]
    counts = profile.count_categorical(["a"] * 30 + ["c"] * 70, entry["categories"])
    assert counts == [30, 0, 70]
    e, a = [0.5, 0.5, 0.0001], [0.3, 0.0001, 0.7]
    expected = sum((ai - ei) * math.log(ai / ei) for ei, ai in zip(e, a, strict=True))
    assert drift.psi(entry["counts"], counts) == pytest.approx(expected, abs=1e-9)


def test_identical_distributions_give_zero_psi_and_levels_follow_the_policy():
    assert drift.psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0, abs=1e-12)
    thresholds = drift.Thresholds(psi_warn=0.1, psi_alert=0.25, min_rows=100)
    assert drift.level_of(0.09, 1000, thresholds) == "ok"
    assert drift.level_of(0.10, 1000, thresholds) == "warn"
    assert drift.level_of(0.25, 1000, thresholds) == "alert"
    assert drift.level_of(0.9, 99, thresholds) == "ok"  # too few rows to alert on


def test_a_certain_and_material_shift_below_the_psi_bins_warns_and_noise_does_not():
    rng = np.random.default_rng(11)
    thresholds = drift.Thresholds()
    reference = rng.normal(size=50_000)
    entry = profile.feature_profile(reference.tolist(), "float64")

    def level(current):
        counts = profile.count_numeric(current, entry["edges"])
        return drift.level_of(
            drift.psi(entry["counts"], counts), len(current), thresholds, ks=drift.ks(reference, current)
        )

    assert level(rng.normal(loc=0.3, size=100_000)) == "warn"  # PSI about 0.086, KS about 0.12
    assert all(level(rng.normal(size=10_000)) == "ok" for _ in range(20))

    expected = [1_000, 2_000, 3_000, 4_000]
    moved = [2_000, 2_000, 3_000, 3_000]  # ten points moved into the rarest category
    shift = drift.category_shift(expected, moved)
    assert shift is not None and shift[0] == pytest.approx(0.1) and shift[1] < 1e-6
    psi = drift.psi(expected, moved)
    assert psi < thresholds.psi_warn
    assert drift.level_of(psi, 10_000, thresholds, category=shift) == "warn"
    noise = [990, 2_030, 2_980, 4_000]
    same = drift.category_shift(expected, noise)
    assert drift.level_of(drift.psi(expected, noise), 10_000, thresholds, category=same) == "ok"
