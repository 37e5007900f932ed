"""Small SVG bar charts of per-group fairness metrics (data in, SVG text out). Used by the
review pages and the reports; every label is escaped."""

from __future__ import annotations

from html import escape
from typing import Any

SERIES = (
    ("selection_rate", "Selection rate", "#1f5fae"),
    ("true_positive_rate", "True positive rate", "#2e9e5b"),
    ("false_positive_rate", "False positive rate", "#d9822b"),
)
REGRESSION_SERIES = (("mean_prediction", "Mean prediction", "#1f5fae"),)


CHAR_W = 6.6  # average width of an 11px sans-serif character, to size labels without a font engine


def _label(group: str, size: Any, excluded: bool) -> str:
    tag = f" (n={int(size)})" if size is not None else ""
    return f"{group[:40]}{tag}{' excluded' if excluded else ''}"


def group_bar_chart(feature: dict[str, Any], *, plot_w: int = 300) -> str:
    """Grouped horizontal bars: one block per group, one bar per metric (0..1 scale for rates)."""
    groups: dict[str, dict[str, Any]] = feature.get("groups", {})
    series = SERIES if any("selection_rate" in m for m in groups.values()) else REGRESSION_SERIES
    names = list(groups)
    excluded = set(feature.get("excluded_groups", []))
    labels = {g: _label(str(g), groups[g].get("count"), g in excluded) for g in names}
    label_w = int(min(320, max(100, CHAR_W * max((len(t) for t in labels.values()), default=10) + 12)))
    legend_w = sum(14 + CHAR_W * len(label) + 18 for _, label, _ in series)
    width = int(max(label_w + plot_w + 50, legend_w + 10))
    bar_h, gap, top = 12, 10, 34
    block = bar_h * len(series) + gap
    height = top + block * max(len(names), 1) + 24
    values = [groups[g].get(k) or 0.0 for g in names for k, _, _ in series]
    scale_max = 1.0 if series is SERIES else (max(values) if values and max(values) > 0 else 1.0)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(str(feature.get("feature", "")))} by group" class="chart">',
        f'<text x="0" y="14" font-size="13" font-weight="600" fill="#1d2330">{escape(str(feature.get("feature")))}'
        "</text>",
    ]
    x = label_w
    lx = 0.0
    for _, label, color in series:
        out.append(f'<rect x="{lx:.0f}" y="20" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{lx + 14:.0f}" y="29" font-size="11" fill="#333">{escape(label)}</text>')
        lx += 14 + CHAR_W * len(label) + 18
    for gi, group in enumerate(names):
        y0 = top + gi * block
        style = ' fill="#8a8f99"' if group in excluded else ' fill="#1d2330"'
        out.append(
            f'<text x="{label_w - 6}" y="{y0 + bar_h * len(series) / 2 + 4}" font-size="11" text-anchor="end"{style}>'
            f"{escape(labels[group])}</text>"
        )
        for si, (key, _, color) in enumerate(series):
            value = groups[group].get(key)
            w = 0 if value is None else max(0.0, min(1.0, float(value) / scale_max)) * plot_w
            y = y0 + si * bar_h
            opacity = "0.45" if group in excluded else "1"
            out.append(
                f'<rect x="{x}" y="{y}" width="{w:.1f}" height="{bar_h - 2}" fill="{color}" fill-opacity="{opacity}"/>'
            )
            text = "n/a" if value is None else f"{float(value):.3f}"
            out.append(f'<text x="{x + w + 4:.1f}" y="{y + bar_h - 3}" font-size="10" fill="#333">{text}</text>')
    axis_y = top + block * max(len(names), 1)
    out.append(f'<line x1="{x}" y1="{top - 2}" x2="{x}" y2="{axis_y}" stroke="#999"/>')
    out.append("</svg>")
    return "".join(out)
