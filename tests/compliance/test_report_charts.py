"""Group names are user data: matplotlib must draw them literally, never as mathtext."""

from __future__ import annotations

import pytest

from compliance.report_charts import fairness_chart


@pytest.mark.parametrize("name", [r"$\nonexistentmacro$", r"$\frac{a}{b}$", "50$ and 20$"])
def test_a_group_name_with_dollar_signs_is_drawn_as_text(name):
    feature = {
        "feature": name,
        "groups": {name: {"count": 40, "selection_rate": 0.5}, "other": {"count": 40, "selection_rate": 0.4}},
    }
    svg = fairness_chart(feature).decode()
    assert svg.startswith("<?xml") and "<svg" in svg
