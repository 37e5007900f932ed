from __future__ import annotations

from core.errors import DomainError


class WorkflowError(DomainError):
    """A refused state transition (wrong state, wrong role, four-eyes rule)."""

    code = "transition_refused"
    status = 409


class DatasetInUse(WorkflowError):
    """A dataset's key is not destroyed while a version trained or evaluated on it is servable or
    may become so."""

    code = "dataset_in_use"


class DatasetRetentionRunning(WorkflowError):
    """A dataset's key is not destroyed before the policy's retention has passed since the last
    version that used it was retired."""

    code = "dataset_retention_running"


class TransientCheckError(Exception):
    """A failure worth retrying (database or storage briefly unavailable): the check task retries."""
