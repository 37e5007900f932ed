"""{% load evidence %}: {{ name|metric_label }} shows a metric's human name (core.metric_names)."""

from __future__ import annotations

from django import template

from core.metric_names import metric_label as label_of
from core.metric_names import with_labels

register = template.Library()


@register.filter
def metric_label(name: str) -> str:
    return label_of(str(name))


@register.filter(is_safe=True)  # (joined messages arrive escaped: not escaped twice)
def metric_label_text(text: str) -> str:
    """A message with its metric identifiers named (core.metric_names.with_labels)."""
    return with_labels(str(text))
