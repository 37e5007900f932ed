from __future__ import annotations

from typing import Any

from core.errors import DomainError


class ServingError(DomainError):
    """A refused prediction request; `status` and `code` go to the client, `details` too."""

    def __init__(self, message: str, *, status: int, code: str, details: Any = None):
        super().__init__(message, status=status, code=code, details=details)
