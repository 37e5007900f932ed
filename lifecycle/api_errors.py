"""One error shape for everything under /api/: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

from typing import Any

from django.db import InterfaceError, OperationalError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from lifecycle.errors import LifecycleError, SubmissionInvalid


def error_response(code: str, message: str, http_status: int, details: Any = None) -> Response:
    return Response({"error": {"code": code, "message": message, "details": details}}, status=http_status)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, SubmissionInvalid):
        return error_response(exc.code, exc.message, exc.status, exc.errors)
    if isinstance(exc, (OperationalError, InterfaceError)):
        # The database cannot be reached (down, restarting, connection lost mid-request): nothing
        # was done and nothing can be recorded, so no answer is given either.
        return error_response(
            "database_unavailable", "The database is unreachable, so nothing was done. Try again later.", 503
        )
    if isinstance(exc, LifecycleError):
        details = exc.details if exc.details is not None else ({exc.field: [exc.message]} if exc.field else None)
        return error_response(exc.code, exc.message, exc.status, details)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        return error_response(
            "invalid", "The request is invalid: see details.", status.HTTP_400_BAD_REQUEST, exc.detail
        )
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code, message = (codes if isinstance(codes, str) else "error"), str(exc.detail)
    else:  # Http404 and PermissionDenied raised by Django helpers
        code = {404: "not_found", 403: "permission_denied"}.get(response.status_code, "error")
        message = str(response.data.get("detail", "")) if isinstance(response.data, dict) else ""
    response.data = {"error": {"code": code, "message": message, "details": None}}
    return response
