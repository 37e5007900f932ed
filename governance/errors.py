from __future__ import annotations

from core.errors import DomainError


class WorkflowError(DomainError):
    """A refused state transition (wrong state, wrong role, four-eyes rule)."""

    code = "transition_refused"
    status = 409
