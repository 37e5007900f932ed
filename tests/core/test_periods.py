"""How a window reads on the pages and in the reports (core.periods.span_label, {{ a|span:b }})."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from django.template import Context, Template

from core.periods import span_label


def test_a_window_of_seconds_is_shown_to_the_second_and_a_longer_one_to_the_minute():
    start = datetime(2026, 11, 30, 3, 37, 5, tzinfo=UTC)
    assert span_label(start, start + timedelta(seconds=30)) == "2026-11-30 03:37:05 – 2026-11-30 03:37:35"
    assert span_label(start, start + timedelta(hours=1)) == "2026-11-30 03:37 – 2026-11-30 04:37"
    paris = timezone(timedelta(hours=1))  # shown in UTC whatever zone the values carry
    assert span_label(start.astimezone(paris), start + timedelta(hours=1)) == "2026-11-30 03:37 – 2026-11-30 04:37"
    assert span_label(None, start) == ""
    rendered = Template("{% load periods %}{{ a|span:b }}").render(
        Context({"a": start, "b": start + timedelta(seconds=30)})
    )
    assert rendered == "2026-11-30 03:37:05 – 2026-11-30 03:37:35"
