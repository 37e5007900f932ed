from __future__ import annotations

from core.errors import DomainError, Forbidden, NotFound, TooLarge

__all__ = ["ArtifactIntegrityError", "Forbidden", "LifecycleError", "NotFound", "SubmissionInvalid", "TooLarge"]


class LifecycleError(DomainError):
    """A refused registry operation."""


class SubmissionInvalid(LifecycleError):
    """Several field errors at once: the whole submission is validated before saving."""

    code = "invalid_submission"

    def __init__(self, errors: dict[str, list[str]], *, status: int = 400):
        self.errors = errors
        super().__init__(
            "The submission was refused: " + "; ".join(f"{f}: {' '.join(m)}" for f, m in errors.items()),
            details=errors,
            status=status,
        )


class ArtifactIntegrityError(LifecycleError):
    """The stored artifact's bytes no longer match the SHA-256 recorded at upload."""

    code = "artifact_tampered"
    status = 409
