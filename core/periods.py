"""Time periods: the half-open [since, until) filter every selector uses, and the parsing of
the dates people type into filters and report forms."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.errors import DomainError


class PeriodError(DomainError):
    code = "invalid_date"


Q_ = TypeVar("Q_", bound=QuerySet[Any])


def in_period(records: Q_, since: Any = None, until: Any = None, *, field: str = "created_at") -> Q_:
    """Rows whose `field` lies in the half-open period [since, until); a missing end is open."""
    if since is not None:
        records = records.filter(**{f"{field}__gte": since})
    if until is not None:
        records = records.filter(**{f"{field}__lt": until})
    return records


def parse_moment(value: str, *, field: str, end: bool = False) -> datetime | None:
    """A date (a whole day; as an end, the day is included) or an ISO 8601 date-time."""
    value = (value or "").strip()
    if not value:
        return None
    bad = PeriodError(f"{field}: {value!r} is not a date (YYYY-MM-DD) or an ISO 8601 date-time.", field=field)
    try:
        day = date.fromisoformat(value)
    except ValueError:
        try:
            moment = parse_datetime(value.replace(" ", "T"))
        except ValueError:  # well formed but impossible, e.g. month 13
            raise bad from None
        if moment is None:
            raise bad from None
        return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)
    try:
        return datetime.combine(day + timedelta(days=1) if end else day, time.min, tzinfo=UTC)
    except OverflowError:  # the day after 9999-12-31
        raise bad from None


def span_label(start: datetime | None, end: datetime | None) -> str:
    """A window as people read it, in UTC: "2026-11-30 03:37 – 2026-11-30 04:37"; to the second
    when both ends fall in the same minute (a window of seconds would read "03:37 – 03:37")."""
    if start is None or end is None:
        return ""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    shape = (
        "%Y-%m-%d %H:%M:%S"
        if start.replace(second=0, microsecond=0) == end.replace(second=0, microsecond=0)
        else "%Y-%m-%d %H:%M"
    )
    return f"{start:{shape}} – {end:{shape}}"
