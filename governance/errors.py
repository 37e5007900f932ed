from __future__ import annotations

from lifecycle.errors import LifecycleError


class WorkflowError(LifecycleError):
    """A refused state transition (wrong state, wrong role, four-eyes rule)."""

    code = "transition_refused"
    status = 409


class ReportError(LifecycleError):
    """A report or export that cannot be produced (bad period, or rendering failed)."""

    code = "report_failed"
    status = 400

    def __init__(self, message: str, *, field: str | None = None, status: int | None = None):
        super().__init__(message, field=field)
        if status is not None:
            self.status = status
