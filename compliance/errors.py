from __future__ import annotations

from core.errors import DomainError


class ReportError(DomainError):
    """A report or export that cannot be produced (bad period, or rendering failed)."""

    code = "report_failed"
    status = 400
