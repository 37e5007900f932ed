"""Small SVG line charts for the monitoring tab and the report (data in, SVG text out; every
label escaped): one small multiple per feature over the windows, with the policy's lines."""

from __future__ import annotations

from html import escape
from typing import Any

from core.metric_names import metric_label

WARN, ALERT = "#b25e09", "#b3261e"


def line_chart(
    title: str,
    points: list[tuple[str, float | None]],
    *,
    lines: tuple[tuple[Any, ...], ...] = (),
    bands: list[tuple[float, float] | None] | None = None,
    width: int = 320,
    height: int = 190,
    top: float | None = None,
    y_label: str = "",
    x_label: str = "window start",
) -> str:
    """A titled line over the windows (x: window order) with labelled axes, dashed policy lines
    ((value, colour[, label]) each), each window's interval as a bar, and a legend."""
    pad_l, pad_r, pad_t, pad_b = 46, 10, 44, 34
    values = [v for _, v in points if v is not None] + [line[0] for line in lines]
    if bands:
        values += [b for band in bands if band for b in band]
    high = top if top is not None else max(values + [0.01]) * 1.15
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    n = max(len(points), 1)

    def x(i: int) -> float:
        return pad_l + (plot_w * (i + 0.5) / n)

    def y(v: float) -> float:
        return pad_t + plot_h - max(0.0, min(1.0, v / high)) * plot_h

    bottom = pad_t + plot_h
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" class="chart small-multiple" font-family="system-ui, sans-serif">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="13" font-size="12" font-weight="600" fill="#1d2330">{escape(title[:48])}</text>',
        f'<line x1="{pad_l}" y1="{bottom}" x2="{width - pad_r}" y2="{bottom}" stroke="#767d8a"/>',
        f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{bottom}" stroke="#767d8a"/>',
    ]
    for tick in (0.0, high / 2, high):  # y ticks
        out.append(
            f'<text x="{pad_l - 4}" y="{y(tick) + 4:.1f}" font-size="10" text-anchor="end" fill="#3b4252">'
            f"{tick:.2f}</text>"
        )
    if y_label:
        out.append(
            f'<text x="10" y="{pad_t + plot_h / 2:.1f}" font-size="10" fill="#3b4252" text-anchor="middle" '
            f'transform="rotate(-90 10 {pad_t + plot_h / 2:.1f})">{escape(y_label)}</text>'
        )
    # the legend, under the title: the series, each policy line, the interval
    legend: list[tuple[str, str, str]] = [("line", "#1f5fae", "value")]
    for line in lines:
        legend.append(("dash", line[1], line[2] if len(line) > 2 else f"policy {line[0]:g}"))
    if bands and any(bands):
        legend.append(("band", "#7aa3d6", "95% interval"))
    lx = 0.0
    for kind, color, label in legend:
        if kind == "band":
            out.append(f'<rect x="{lx:.0f}" y="22" width="12" height="10" fill="{color}" fill-opacity="0.5"/>')
        else:
            dash = ' stroke-dasharray="3,2"' if kind == "dash" else ""
            out.append(
                f'<line x1="{lx:.0f}" y1="27" x2="{lx + 14:.0f}" y2="27" stroke="{color}" stroke-width="2"{dash}/>'
            )
        out.append(f'<text x="{lx + 17:.0f}" y="31" font-size="10" fill="#3b4252">{escape(label)}</text>')
        lx += 17 + 5.6 * len(label) + 10
    for line in lines:
        value, color = line[0], line[1]
        out.append(
            f'<line x1="{pad_l}" y1="{y(value):.1f}" x2="{width - pad_r}" y2="{y(value):.1f}" stroke="{color}" '
            'stroke-dasharray="3,3"/>'
        )
    if bands:
        for i, band in enumerate(bands):
            if band:
                lo, hi = y(band[0]), y(band[1])
                out.append(
                    f'<rect x="{x(i) - 4:.1f}" y="{hi:.1f}" width="8" height="{max(lo - hi, 1.0):.1f}" '
                    f'fill="#7aa3d6" fill-opacity="0.5" stroke="#1f5fae" stroke-width="0.8">'
                    f"<title>95% interval {band[0]:.4f} to {band[1]:.4f}</title></rect>"
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
            f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{color}">'
            f"<title>{escape(label)}: {v:.4f}</title></circle>"
        )
    if points:
        out.append(f'<text x="{pad_l}" y="{bottom + 13}" font-size="10" fill="#3b4252">{escape(points[0][0])}</text>')
        if len(points) > 1:
            out.append(
                f'<text x="{width - pad_r}" y="{bottom + 13}" font-size="10" text-anchor="end" fill="#3b4252">'
                f"{escape(points[-1][0])}</text>"
            )
    out.append(
        f'<text x="{pad_l + plot_w / 2:.1f}" y="{height - 3}" font-size="10" text-anchor="middle" fill="#3b4252">'
        f"{escape(x_label)}</text>"
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
        shown = "prediction" if name == "__prediction__" else name
        lines = ((warn, WARN, f"warn {warn:g}"), (alert, ALERT, f"alert {alert:g}"))
        charts.append(line_chart(f"PSI {shown}", points, lines=lines, y_label="PSI"))
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
        lines = ((bound, ALERT, f"policy minimum {bound:g}"),) if bound else ()
        label = metric_label(name)
        charts.append(line_chart(f"live {label}", points, lines=lines, bands=bands, top=1.0, y_label=label))
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
    shown = list(series.items())[:16]
    return [line_chart(f"selection {k}", pts, top=1.0, y_label="selection rate") for k, pts in shown]
