"""{% load periods %}: {{ w.start|span:w.end }} shows a window as core.periods.span_label does."""

from __future__ import annotations

from datetime import datetime

from django import template

from core.periods import span_label

register = template.Library()


@register.filter
def span(start: datetime | None, end: datetime | None) -> str:
    return span_label(start, end)
