"""Small SVG line charts for the monitoring tab and the report (data in, SVG text out; every
label escaped): one small multiple per feature over the windows, with the policy's lines."""

from __future__ import annotations

from html import escape
from typing import Any

WARN, ALERT = "#d9822b", "#b3261e"


def line_chart(
    title: str,
    points: list[tuple[str, float | None]],
    *,
    lines: tuple[tuple[float, str], ...] = (),
    bands: list[tuple[float, float] | None] | None = None,
    width: int = 220,
    height: int = 110,
    top: float | None = None,
) -> str:
    """A titled line over the windows (x: window order), dashed policy lines, optional interval band."""
    pad_l, pad_r, pad_t, pad_b = 34, 8, 20, 18
    values = [v for _, v in points if v is not None] + [y for y, _ in lines]
    if bands:
        values += [b for band in bands if band for b in band]
    high = top if top is not None else max(values + [0.01]) * 1.15
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    n = max(len(points), 1)

    def x(i: int) -> float:
        return pad_l + (plot_w * (i + 0.5) / n)

    def y(v: float) -> float:
        return pad_t + plot_h - max(0.0, min(1.0, v / high)) * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" class="chart small-multiple">',
        f'<text x="0" y="12" font-size="11" font-weight="600" fill="#1d2330">{escape(title[:34])}</text>',
        f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - pad_r}" y2="{pad_t + plot_h}" stroke="#999"/>',
        f'<text x="{pad_l - 4}" y="{pad_t + 4}" font-size="9" text-anchor="end" fill="#555">{high:.2f}</text>',
        f'<text x="{pad_l - 4}" y="{pad_t + plot_h}" font-size="9" text-anchor="end" fill="#555">0</text>',
    ]
    for value, color in lines:
        out.append(
            f'<line x1="{pad_l}" y1="{y(value):.1f}" x2="{width - pad_r}" y2="{y(value):.1f}" stroke="{color}" '
            'stroke-dasharray="3,3"/>'
        )
    if bands:
        for i, band in enumerate(bands):
            if band:
                out.append(
                    f'<line x1="{x(i):.1f}" y1="{y(band[0]):.1f}" x2="{x(i):.1f}" y2="{y(band[1]):.1f}" '
                    'stroke="#7aa3d6" stroke-width="5" stroke-opacity="0.5"/>'
                )
    path = [(x(i), y(v)) for i, (_, v) in enumerate(points) if v is not None]
    if len(path) > 1:
        out.append(
            '<polyline fill="none" stroke="#1f5fae" stroke-width="1.5" points="'
            + " ".join(f"{a:.1f},{b:.1f}" for a, b in path)
            + '"/>'
        )
    for i, (label, v) in enumerate(points):
        if v is None:
            continue
        # (red marks a PSI at or above the alert line; a metric's line is a minimum, not a ceiling)
        color = ALERT if len(lines) == 2 and v >= lines[1][0] else "#1f5fae"
        out.append(
            f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{color}">'
            f"<title>{escape(label)}: {v:.4f}</title></circle>"
        )
    if points:
        out.append(f'<text x="{pad_l}" y="{height - 4}" font-size="9" fill="#555">{escape(points[0][0])}</text>')
        out.append(
            f'<text x="{width - pad_r}" y="{height - 4}" font-size="9" text-anchor="end" fill="#555">'
            f"{escape(points[-1][0])}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def psi_multiples(windows: list[Any], *, warn: float, alert: float) -> list[str]:
    """One chart per feature (and the prediction): its PSI in each window."""
    names: list[str] = []
    for w in windows:
        names += [n for n in w.drift if n not in names]
    charts = []
    # windows that start within the same minute are told apart to the second
    shape = "%m-%d %H:%M:%S" if len({f"{w.start:%m-%d %H:%M}" for w in windows}) < len(windows) else "%m-%d %H:%M"
    for name in [*names, "__prediction__"]:
        points = []
        for w in windows:
            item = w.prediction_drift if name == "__prediction__" else w.drift.get(name, {})
            points.append((w.start.strftime(shape), item.get("psi")))
        charts.append(line_chart(f"PSI {name}", points, lines=((warn, WARN), (alert, ALERT))))
    return charts


def metric_multiples(windows: list[Any], minimums: dict[str, float | None]) -> list[str]:
    """One chart per live metric, with its 95% interval in each window and the policy minimum."""
    names: list[str] = []
    for w in windows:
        names += [n for n in (w.performance.get("metrics") or {}) if n not in names]
    charts = []
    for name in names:
        points = [(f"{w.start:%m-%d}", (w.performance.get("metrics") or {}).get(name)) for w in windows]
        bands = [(w.performance.get("intervals") or {}).get(name) for w in windows]
        bound = minimums.get(name)
        charts.append(
            line_chart(f"live {name}", points, lines=((bound, ALERT),) if bound else (), bands=bands, top=1.0)
        )
    return charts


def fairness_multiples(windows: list[Any]) -> list[str]:
    """Selection rate (or mean prediction) per group over the windows, one chart per group."""
    series: dict[str, list[tuple[str, float | None]]] = {}
    for i, w in enumerate(windows):
        for feature in w.fairness.get("features", []):
            for group, values in (feature.get("groups") or {}).items():
                key = f"{feature['feature']}={group}"
                rate = values.get("selection_rate", values.get("mean_prediction"))
                series.setdefault(key, [(f"{x.start:%m-%d}", None) for x in windows[:i]])
                series[key].append((f"{w.start:%m-%d}", rate))
    return [line_chart(f"selection {k}", pts, top=1.0) for k, pts in list(series.items())[:16]]
