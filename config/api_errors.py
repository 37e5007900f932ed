"""DRF's exception handler for everything under /api/: domain errors and DRF's own errors in
core's one error shape."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.api_errors import domain_error, error_body


def error_response(code: str, message: str, http_status: int, details: Any = None) -> Response:
    return Response(error_body(code, message, details), status=http_status)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    mapped = domain_error(exc)
    if mapped is not None:
        body, http_status = mapped
        return Response(body, status=http_status)
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
    response.data = error_body(code, message)
    return response
