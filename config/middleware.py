"""Request hygiene before any view: a query string holding NUL is refused with a 400 that says
so. PostgreSQL cannot store or compare NUL in text, so such a filter would otherwise reach the
database and come back as a 500 (NUL in the audit and admin list filters)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote

from django.http import HttpRequest, HttpResponse, JsonResponse


def nul_problem(request: HttpRequest) -> str:
    """ "<field>: the NUL character is not allowed" for the first parameter holding NUL ("" if none)."""
    if "\x00" not in unquote(request.META.get("QUERY_STRING", "")):
        return ""
    for name, values in request.GET.lists():
        if "\x00" in name or any("\x00" in v for v in values):
            return f"{name.replace(chr(0), '?')[:100]}: the NUL character is not allowed (%00)."
    return "The query string holds a NUL character (%00), which no filter accepts."


class RefuseNulMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        message = nul_problem(request)
        if message:
            if request.path.startswith("/v2/"):
                return JsonResponse({"error": message}, status=400)
            if request.path.startswith("/api/"):
                body = {"error": {"code": "invalid_filter", "message": message, "details": None}}
                return JsonResponse(body, status=400)
            return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
