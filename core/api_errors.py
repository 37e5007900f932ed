"""One error shape for everything under /api/: {"error": {"code", "message", "details"}}.
Plain data: each interface (DRF's exception handler in config, the serving views) wraps it in
its own response."""

from __future__ import annotations

from typing import Any

from django.db import InterfaceError, OperationalError

from core.errors import DomainError

DATABASE_UNAVAILABLE = (
    "database_unavailable",
    "The database is unreachable, so nothing was done. Try again later.",
    503,
)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def domain_error(exc: Exception) -> tuple[dict[str, Any], int] | None:
    """The body and status for a domain error or an unreachable database; None for anything
    else (the interface's own handling applies)."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        # The database cannot be reached (down, restarting, connection lost mid-request): nothing
        # was done and nothing can be recorded, so no answer is given either.
        code, message, status = DATABASE_UNAVAILABLE
        return error_body(code, message), status
    if isinstance(exc, DomainError):
        details = exc.details if exc.details is not None else ({exc.field: [exc.message]} if exc.field else None)
        return error_body(exc.code, exc.message, details), exc.status
    return None
