from __future__ import annotations

from lifecycle.errors import LifecycleError


class WorkflowError(LifecycleError):
    """A refused state transition (wrong state, wrong role, four-eyes rule)."""

    code = "transition_refused"
    status = 409
