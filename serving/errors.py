from __future__ import annotations

from typing import Any


class ServingError(Exception):
    """A refused prediction request; `status` and `code` go to the client, `details` too."""

    def __init__(self, message: str, *, status: int, code: str, details: Any = None):
        super().__init__(message)
        self.message, self.status, self.code, self.details = message, status, code, details
