from __future__ import annotations

from typing import Any


class LifecycleError(Exception):
    """A refused registry operation. `field` names the input at fault (form field or API
    field); `status` is the HTTP status an interface should answer with."""

    code = "invalid"
    status = 400

    def __init__(self, message: str, *, field: str | None = None, details: Any = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details
        if code:
            self.code = code


class TooLarge(LifecycleError):
    code = "too_large"
    status = 413


class NotFound(LifecycleError):
    code = "not_found"
    status = 404


class Forbidden(LifecycleError):
    code = "forbidden"
    status = 403


class SubmissionInvalid(LifecycleError):
    """Several field errors at once: the whole submission is validated before saving."""

    code = "invalid_submission"

    def __init__(self, errors: dict[str, list[str]], *, status: int = 400):
        self.errors = errors
        super().__init__(
            "The submission was refused: " + "; ".join(f"{f}: {' '.join(m)}" for f, m in errors.items()),
            details=errors,
        )
        self.status = status


class ArtifactIntegrityError(LifecycleError):
    """The stored artifact's bytes no longer match the SHA-256 recorded at upload."""

    code = "artifact_tampered"
    status = 409
