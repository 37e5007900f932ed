from __future__ import annotations

from core.errors import DomainError, Forbidden, NotFound, TooLarge

__all__ = [
    "ArtifactIntegrityError",
    "DatasetIntegrityError",
    "DatasetKeyDestroyed",
    "DatasetKeysUnavailable",
    "Forbidden",
    "LifecycleError",
    "MlflowImportRefused",
    "NotFound",
    "SubmissionInvalid",
    "TooLarge",
]


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


class DatasetKeyDestroyed(LifecycleError):
    """A dataset whose data key a risk officer destroyed: its file can never be read again."""

    code = "dataset_key_destroyed"
    status = 410


class DatasetIntegrityError(LifecycleError):
    """A dataset's stored file does not decrypt, or not to its recorded SHA-256: it was changed,
    truncated, reordered, or belongs to another dataset."""

    code = "dataset_tampered"
    status = 409


class DatasetKeysUnavailable(LifecycleError):
    """A dataset's key cannot be unwrapped: LOG_KEK is wrong (or the KEK that wrapped it is not
    configured). Nothing is read or stored in clear instead."""

    code = "dataset_keys_unavailable"
    status = 503


class MlflowImportRefused(LifecycleError):
    """An MLflow model directory was refused; the message says why and how to fix it."""
