"""Values the PDF reports show as tables rather than dumps (plain data in, rows out), and the
table of contents every long report opens with (HTML in, HTML out; WeasyPrint fills in the page
numbers with target-counter)."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from django.utils.html import escape, strip_tags

# Policy fields in the order a reader looks for them; any other field follows, sorted.
POLICY_ORDER = (
    "min_accuracy",
    "min_balanced_accuracy",
    "min_roc_auc",
    "min_f1",
    "min_r2",
    "max_mae",
    "max_rmse",
    "max_fairness_difference",
    "min_fairness_ratio",
    "min_group_size",
)


def show(value: Any) -> str:
    """A value as a reader reads it: None is "not set", booleans are yes/no, lists are joined."""
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(show(v) for v in value) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def policy_rows(policy: dict[str, Any]) -> list[dict[str, str]]:
    """The policy values a check used, one row each (name, value), in POLICY_ORDER."""
    known = [k for k in POLICY_ORDER if k in policy]
    rest = sorted(k for k in policy if k not in POLICY_ORDER)
    return [{"name": k, "label": k.replace("_", " "), "value": show(policy[k])} for k in known + rest]


def in_pairs(rows: list[dict[str, str]]) -> list[tuple[dict[str, str], dict[str, str] | None]]:
    """Rows two by two (a table of four columns, half as long: policies hold some 30 values)."""
    half = (len(rows) + 1) // 2
    return [(rows[i], rows[half + i] if half + i < len(rows) else None) for i in range(half)]


def _is_estimator(value: Any) -> bool:
    return isinstance(value, dict) and "__estimator__" in value


def _is_named_steps(value: Any) -> bool:
    """[[name, estimator, (columns)], ...]: a Pipeline's steps or a ColumnTransformer's transformers."""
    return (
        isinstance(value, (list, tuple))
        and bool(value)
        and all(
            isinstance(item, (list, tuple)) and len(item) >= 2 and isinstance(item[0], str) and _is_estimator(item[1])
            for item in value
        )
    )


def parameter_rows(params: dict[str, Any], depth: int = 0) -> list[dict[str, Any]]:
    """get_params() as recorded (nested estimators as {"__estimator__", "params"}) flattened into
    rows (name, value, depth): each step of a pipeline is a row naming its estimator, its own
    parameters indented below it, so a pipeline reads as a table and not as JSON."""
    rows: list[dict[str, Any]] = []
    for name in sorted(params):
        value = params[name]
        if _is_estimator(value):
            rows.append({"name": name, "value": value["__estimator__"], "depth": depth, "estimator": True})
            rows += parameter_rows(value.get("params") or {}, depth + 1)
        elif _is_named_steps(value):
            rows.append({"name": name, "value": f"{len(value)} step{'s' if len(value) != 1 else ''}", "depth": depth})
            for item in value:
                step, estimator, *extra = item
                on = f" on {show(extra[0])}" if extra and extra[0] not in (None, "", []) else ""
                rows.append(
                    {"name": step, "value": f"{estimator['__estimator__']}{on}", "depth": depth + 1, "estimator": True}
                )
                rows += parameter_rows(estimator.get("params") or {}, depth + 2)
        elif isinstance(value, dict):
            rows.append({"name": name, "value": "", "depth": depth})
            rows += parameter_rows(value, depth + 1)
        else:
            rows.append({"name": name, "value": show(value), "depth": depth})
    return rows


CONTENTS_MARK = "<!-- contents -->"
_H2 = re.compile(r"<h2(?P<attrs>[^>]*)>(?P<inner>.*?)</h2>", re.S)


def with_contents(html: str) -> str:
    """Give every h2 an id and put a table of contents where the template says CONTENTS_MARK;
    the page numbers are WeasyPrint's target-counter of each link. A template without the mark
    is returned unchanged. (The HTML is our template's output: user text in it is escaped, so
    an h2 tag is always ours.)"""
    if CONTENTS_MARK not in html:
        return html
    entries: list[tuple[str, str]] = []

    def number(match: re.Match[str]) -> str:
        anchor = f"section-{len(entries) + 1}"
        entries.append((anchor, " ".join(unescape(strip_tags(match["inner"])).split())))
        return f'<h2 id="{anchor}"{match["attrs"]}>{match["inner"]}</h2>'

    body = _H2.sub(number, html)
    items = "".join(f'<li><a href="#{a}">{escape(text)}</a></li>' for a, text in entries)
    toc = f'<nav class="toc"><h2 class="toc-title">Contents</h2><ol>{items}</ol></nav>'
    return body.replace(CONTENTS_MARK, toc, 1)
