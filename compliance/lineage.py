"""The lineage graph: datasets -> versions -> the versions built from them, each node with its
hash. Built from already-loaded versions, drawn as SVG text with every label escaped, so the
same picture goes into the auditor pages and the PDF report."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html import escape

from lifecycle.models import Dataset, ModelVersion

NODE_W, NODE_H = 210, 50
COL_GAP, ROW_GAP = 70, 18
STATUS_COLOURS = {
    "production": "#2e7d32",
    "approved": "#1f5fae",
    "in_review": "#b26a00",
    "checking": "#b26a00",
    "rejected": "#b3261e",
    "retired": "#6b7280",
    "draft": "#6b7280",
}


@dataclass
class Node:
    key: str
    kind: str  # "dataset" or "version"
    label: str
    sha256: str
    status: str = ""
    href: str = ""
    column: int = 0
    row: int = 0


@dataclass
class Edge:
    source: str
    target: str
    label: str


@dataclass
class LineageGraph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "nodes": [
                {"id": n.key, "kind": n.kind, "label": n.label, "sha256": n.sha256, "status": n.status}
                for n in self.nodes.values()
            ],
            "edges": [{"from": e.source, "to": e.target, "relation": e.label} for e in self.edges],
        }


def _dataset_node(d: Dataset) -> Node:
    destroyed = d.key_destroyed_at
    status = f"key destroyed on {destroyed:%Y-%m-%d}" if destroyed else ""
    return Node(key=f"dataset:{d.pk}", kind="dataset", label=str(d), sha256=d.sha256, status=status)


def _depth(v: ModelVersion) -> int:
    return len(v.lineage())


def build_lineage(
    versions: Iterable[ModelVersion], *, href: Callable[[ModelVersion], str] | None = None
) -> LineageGraph:
    """The graph of the given versions plus every ancestor and dataset they name."""
    graph = LineageGraph()
    todo = list(versions)
    seen: dict[int, ModelVersion] = {}
    while todo:
        v = todo.pop()
        if v.pk in seen:
            continue
        seen[v.pk] = v
        if v.parent_id is not None and v.parent is not None:
            todo.append(v.parent)
    ordered = sorted(seen.values(), key=lambda v: (v.registered_model.name, v.version))
    for v in ordered:
        for d, relation in ((v.training_dataset, "trained on"), (v.evaluation_dataset, "evaluated on")):
            node = _dataset_node(d)
            graph.nodes.setdefault(node.key, node)
            graph.edges.append(Edge(node.key, f"version:{v.pk}", relation))
    for v in ordered:
        graph.nodes[f"version:{v.pk}"] = Node(
            key=f"version:{v.pk}",
            kind="version",
            label=str(v),
            sha256=v.artifact_sha256,
            status=v.status,
            href=href(v) if href else "",
            column=1 + _depth(v),
        )
        if v.parent_id is not None:
            graph.edges.append(Edge(f"version:{v.parent_id}", f"version:{v.pk}", "parent of"))
    rows: dict[int, int] = {}
    for node in graph.nodes.values():
        node.row = rows.get(node.column, 0)
        rows[node.column] = node.row + 1
    return graph


def _xy(node: Node) -> tuple[int, int]:
    return 10 + node.column * (NODE_W + COL_GAP), 30 + node.row * (NODE_H + ROW_GAP)


def lineage_svg(graph: LineageGraph, *, focus: str = "") -> str:
    """Columns left to right: datasets, then versions by generation. Arrows point downstream."""
    if not graph.nodes:
        return ""
    cols = max(n.column for n in graph.nodes.values()) + 1
    rows = max(n.row for n in graph.nodes.values()) + 1
    width = 20 + cols * NODE_W + (cols - 1) * COL_GAP
    height = 40 + rows * (NODE_H + ROW_GAP)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="Lineage graph" class="lineage-graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#6b7280"/></marker></defs>',
        '<text x="10" y="16" font-size="11" fill="#6b7280">Datasets</text>',
    ]
    if cols > 1:
        out.append(f'<text x="{10 + NODE_W + COL_GAP}" y="16" font-size="11" fill="#6b7280">Versions →</text>')
    for e in graph.edges:
        if e.source not in graph.nodes or e.target not in graph.nodes:
            continue
        sx, sy = _xy(graph.nodes[e.source])
        tx, ty = _xy(graph.nodes[e.target])
        x1, y1, x2, y2 = sx + NODE_W, sy + NODE_H / 2, tx, ty + NODE_H / 2
        mid = (x1 + x2) / 2
        dash = ' stroke-dasharray="4 3"' if e.label == "evaluated on" else ""
        out.append(
            f'<path d="M {x1} {y1} C {mid} {y1}, {mid} {y2}, {x2 - 2} {y2}" fill="none" stroke="#6b7280" '
            f'stroke-width="1.3"{dash} marker-end="url(#arrow)"><title>{escape(e.label)}</title></path>'
        )
    for n in graph.nodes.values():
        x, y = _xy(n)
        colour = STATUS_COLOURS.get(n.status, "#4b5563") if n.kind == "version" else "#7c3aed"
        stroke = 3 if n.key == focus else 1.5
        box = [
            f'<g class="node node-{n.kind}" data-node="{escape(n.key)}">',
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="#ffffff" stroke="{colour}" '
            f'stroke-width="{stroke}"/>',
            f'<text x="{x + 8}" y="{y + 18}" font-size="12" font-weight="600" fill="#1d2330">'
            f"{escape(n.label[:30])}</text>",
            f'<text x="{x + 8}" y="{y + 34}" font-size="10" font-family="monospace" fill="#4b5563">'
            f"sha256 {escape(n.sha256[:16])}…</text>",
        ]
        if n.status and n.kind == "dataset":  # "key destroyed on ...": a line of its own
            box.append(f'<text x="{x + 8}" y="{y + 46}" font-size="9" fill="#b3261e">{escape(n.status)}</text>')
        elif n.status:
            box.append(
                f'<text x="{x + NODE_W - 8}" y="{y + 18}" font-size="10" text-anchor="end" fill="{colour}">'
                f"{escape(n.status.replace('_', ' '))}</text>"
            )
        box.append(f"<title>{escape(n.label)} sha256 {escape(n.sha256)}</title></g>")
        if n.href:
            box = [f'<a href="{escape(n.href)}">', *box, "</a>"]
        out.extend(box)
    out.append("</svg>")
    return "".join(out)
