"""Charts for the PDF reports, drawn by matplotlib as SVG (data in, SVG bytes out).

Text is drawn as paths (svg.fonttype "path"), so the PDF needs no extra fonts, and group names
taken from user data can never become markup: the SVG is embedded as an image, not inline."""

from __future__ import annotations

import functools
import io
from typing import Any

from governance.charts import REGRESSION_SERIES, SERIES


@functools.cache
def _pyplot() -> Any:
    """matplotlib's pyplot, set up once, when the first chart is drawn (not when Django starts:
    importing it took about half a second of every process's start)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # text.parse_math off: group names come from user data, and "$...$" must stay literal text (a
    # name like "$\\nonexistentmacro$" made every report of its version fail as mathtext).
    plt.rcParams.update(
        {"svg.fonttype": "path", "svg.hashsalt": "model-governance", "font.size": 9, "text.parse_math": False}
    )
    return plt


def _svg(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    _pyplot().close(fig)
    return buf.getvalue()


def fairness_chart(feature: dict[str, Any]) -> bytes:
    """Grouped horizontal bars of the per-group rates of one sensitive feature."""
    groups: dict[str, dict[str, Any]] = feature.get("groups", {})
    series = SERIES if any("selection_rate" in m for m in groups.values()) else REGRESSION_SERIES
    excluded = set(feature.get("excluded_groups", []))
    names = list(groups)
    labels = [
        f"{str(g)[:32]} (n={int(groups[g].get('count') or 0)})" + (" excluded" if g in excluded else "") for g in names
    ]
    height = 0.9 + 0.28 * len(series) * max(len(names), 1)
    fig, ax = _pyplot().subplots(figsize=(6.4, height))
    bar = 0.8 / len(series)
    for si, (key, label, colour) in enumerate(series):
        ys = [gi + si * bar for gi in range(len(names))]
        values = [float(groups[g].get(key) or 0.0) for g in names]
        alpha = [0.4 if g in excluded else 1.0 for g in names]
        bars = ax.barh(ys, values, height=bar * 0.9, color=colour, label=label)
        for b, a, v, g in zip(bars, alpha, values, names, strict=True):
            b.set_alpha(a)
            text = "n/a" if groups[g].get(key) is None else f"{v:.3f}"
            ax.text(v + 0.01, b.get_y() + b.get_height() / 2, text, va="center", fontsize=7)
    ax.set_yticks([gi + bar * (len(series) - 1) / 2 for gi in range(len(names))], labels)
    ax.invert_yaxis()
    if series is SERIES:
        ax.set_xlim(0, 1.12)
    ax.set_title(str(feature.get("feature", ""))[:60], fontsize=10, loc="left")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.08), ncol=len(series), frameon=False, fontsize=7)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def daily_volume_chart(days: list[dict[str, Any]]) -> bytes:
    """Rows predicted per day (bars) with refused requests marked."""
    fig, ax = _pyplot().subplots(figsize=(6.4, 2.2))
    xs = list(range(len(days)))
    ax.bar(xs, [d["rows"] for d in days], color="#1f5fae", label="rows predicted")
    ax.bar(xs, [d["refused"] for d in days], color="#b3261e", label="requests refused")
    ax.set_xlim(-0.6, max(len(days), 7) - 0.4)  # a few days still look like days, not a wall
    step = max(1, len(days) // 10)
    ax.set_xticks(xs[::step], [str(d["day"]) for d in days][::step], rotation=30, ha="right", fontsize=7)
    ax.legend(frameon=False, fontsize=7, loc="upper right")
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)
