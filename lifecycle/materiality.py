"""The tier a model's materiality proposes (inventory): a pure function of three
inputs, each compared with two thresholds; the highest tier any input reaches is proposed.

| input | medium from | high from |
| --- | --- | --- |
| exposure (money at stake per year, EUR) | 1,000,000 | 10,000,000 |
| decisions per year | 100,000 | 1,000,000 |
| people affected per year | 10,000 | 100,000 |

No input given: no proposal (None); the registrant's own tier stands. The data scientist's
proposal and the risk officer's effective tier remain what they were: this is an input to them."""

from __future__ import annotations

THRESHOLDS: dict[str, tuple[int, int]] = {
    "exposure": (1_000_000, 10_000_000),
    "decisions_per_year": (100_000, 1_000_000),
    "affected_people": (10_000, 100_000),
}
TIERS = ("low", "medium", "high")


def proposed_tier(*, exposure: int | None, decisions_per_year: int | None, affected_people: int | None) -> str | None:
    """The tier the materiality inputs propose, or None when none is given."""
    given = {"exposure": exposure, "decisions_per_year": decisions_per_year, "affected_people": affected_people}
    levels = [sum(value >= bound for bound in THRESHOLDS[name]) for name, value in given.items() if value is not None]
    return TIERS[max(levels)] if levels else None
