"""The domain error: one base class every app's error subclasses. A domain module raises it and
knows no HTTP; each interface maps `status` and `code` to its own answer (form error, API
status, protocol error)."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refused operation. `field` names the input at fault (form field or API field);
    `status` is the HTTP status an interface should answer with; `details` go to the client."""

    code = "invalid"
    status = 400

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        details: Any = None,
        code: str | None = None,
        status: int | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details
        if code:
            self.code = code
        if status is not None:
            self.status = status


class TooLarge(DomainError):
    code = "too_large"
    status = 413


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Forbidden(DomainError):
    code = "forbidden"
    status = 403
