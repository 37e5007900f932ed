"""The explanation of one decision as a waterfall (data in, SVG text out; every label escaped):
from the model's base value, each feature's contribution moves the output up or down, the
largest first, until it reaches the output the decision was made on. Features beyond the
largest `top` are summed into one bar, so the bars always add up to the output."""

from __future__ import annotations

from html import escape
from typing import Any

UP, DOWN = "#1f6f50", "#b3261e"  # raises / lowers the output (contrast >= 4.5:1 on white)


def waterfall(explanation: dict[str, Any], *, top: int = 10, width: int = 440) -> str:
    """An SVG waterfall of `explanation` (serving.decisions' payload: base_value, value, output,
    contributions), or "" when it has no contributions."""
    contributions: dict[str, float] = explanation.get("contributions") or {}
    if not contributions:
        return ""
    base, value = float(explanation["base_value"]), float(explanation["value"])
    ranked = sorted(contributions.items(), key=lambda item: (-abs(item[1]), item[0]))
    bars = [(name, float(c)) for name, c in ranked[:top]]
    rest = ranked[top:]
    if rest:
        bars.append((f"{len(rest)} other features", sum(float(c) for _, c in rest)))
    steps, running = [], base
    for name, c in bars:
        steps.append((name, running, running + c, c))
        running += c
    low = min([base, value, *(min(a, b) for _, a, b, _ in steps)])
    high = max([base, value, *(max(a, b) for _, a, b, _ in steps)])
    span = (high - low) or 1.0
    label_w, pad_r, row_h, pad_t = 150, 58, 22, 30
    plot_w = width - label_w - pad_r
    height = pad_t + row_h * (len(steps) + 2) + 44

    def x(v: float) -> float:
        return label_w + (v - low) / span * plot_w

    title = f"How each feature moved the output ({explanation.get('output', 'output')})"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="100%" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" class="chart waterfall" font-family="system-ui, sans-serif">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="14" font-size="12" font-weight="600" fill="#1d2330">{escape(title[:64])}</text>',
    ]
    rows = [("base value", base, base, 0.0), *steps, ("output", value, value, 0.0)]
    for i, (name, start, end, c) in enumerate(rows):
        top_y = pad_t + i * row_h
        mid = top_y + row_h / 2 + 4
        out.append(
            f'<text x="{label_w - 8}" y="{mid:.1f}" font-size="11" text-anchor="end" fill="#1d2330">'
            f"{escape(str(name)[:24])}</text>"
        )
        if name in ("base value", "output") and i in (0, len(rows) - 1):
            out.append(
                f'<line x1="{x(start):.1f}" y1="{top_y + 3}" x2="{x(start):.1f}" y2="{top_y + row_h - 3}" '
                f'stroke="#1d2330" stroke-width="3"/>'
            )
            out.append(f'<text x="{x(start) + 6:.1f}" y="{mid:.1f}" font-size="11" fill="#1d2330">{start:.4f}</text>')
            continue
        left, right = sorted((x(start), x(end)))
        colour = UP if c >= 0 else DOWN
        out.append(
            f'<rect x="{left:.1f}" y="{top_y + 4}" width="{max(right - left, 1.0):.1f}" height="{row_h - 8}" '
            f'fill="{colour}"><title>{escape(str(name))}: {c:+.4f}</title></rect>'
        )
        out.append(f'<text x="{right + 4:.1f}" y="{mid:.1f}" font-size="10" fill="{colour}">{c:+.3f}</text>')
    axis_y = pad_t + row_h * len(rows) + 6
    out.append(f'<line x1="{label_w}" y1="{axis_y}" x2="{label_w + plot_w}" y2="{axis_y}" stroke="#767d8a"/>')
    for tick in (low, (low + high) / 2, high):
        out.append(
            f'<text x="{x(tick):.1f}" y="{axis_y + 13}" font-size="10" text-anchor="middle" fill="#3b4252">'
            f"{tick:.3f}</text>"
        )
    legend_y = axis_y + 28
    out.append(f'<rect x="{label_w}" y="{legend_y - 9}" width="10" height="10" fill="{UP}"/>')
    out.append(f'<text x="{label_w + 14}" y="{legend_y}" font-size="10" fill="#1d2330">raises the output</text>')
    out.append(f'<rect x="{label_w + 120}" y="{legend_y - 9}" width="10" height="10" fill="{DOWN}"/>')
    out.append(f'<text x="{label_w + 134}" y="{legend_y}" font-size="10" fill="#1d2330">lowers the output</text>')
    out.append("</svg>")
    return "".join(out)
