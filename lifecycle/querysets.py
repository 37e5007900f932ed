"""Small queryset helpers shared by the apps' selectors."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db.models import QuerySet

Q_ = TypeVar("Q_", bound=QuerySet[Any])


def in_period(records: Q_, since: Any = None, until: Any = None, *, field: str = "created_at") -> Q_:
    """Rows whose `field` lies in the half-open period [since, until); a missing end is open."""
    if since is not None:
        records = records.filter(**{f"{field}__gte": since})
    if until is not None:
        records = records.filter(**{f"{field}__lt": until})
    return records
