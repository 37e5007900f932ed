"""A database that cannot be reached is a 503 that says so, never a 500: for pages and /api/,
whether the request came with a session or a key. DRF's handler already maps the
errors raised inside an API view (core.api_errors); this covers the rest of the request: a page's
view and template, and the middleware that loads the session user, through handler500."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views import defaults

from core.api_errors import DATABASE_UNAVAILABLE, error_body

logger = logging.getLogger(__name__)
DATABASE_DOWN = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = "30"


def database_unavailable(request: HttpRequest) -> HttpResponse:
    """The 503 in the shape the path's clients read: core's error body under /api/, the Open
    Inference Protocol's under /v2/, a page otherwise. Rendered without the request, so without
    context processors: nothing here may touch the database."""
    code, message, status = DATABASE_UNAVAILABLE
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse(error_body(code, message), status=status)
    elif request.path.startswith("/v2/"):
        response = JsonResponse({"error": message}, status=status)
    else:
        response = HttpResponse(render_to_string("503.html", {"message": message}), status=status)
    response["Retry-After"] = RETRY_AFTER_SECONDS
    return response


class DatabaseUnavailableMiddleware:
    """Answers a view (or its template) that found the database unreachable with the 503."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DATABASE_DOWN):
            logger.error("Database unavailable: %s %s: %s", request.method, request.path, exception)
            return database_unavailable(request)
        return None


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: what a middleware raised (loading the session's user, say) reaches only this.
    Django calls it while handling the exception, so sys.exc_info() names it."""
    if isinstance(sys.exc_info()[1], DATABASE_DOWN):
        return database_unavailable(request)
    return defaults.server_error(request)
