"""Auditors change nothing. Any request that could write (not GET, HEAD or OPTIONS) from an
account whose only role is auditor is refused here, before any view runs, and the attempt is
written to the audit trail. Logging out and starting a report job ("verify now", a report:
it only appends its own row and audit event) are the two exceptions."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from governance.readonly import MESSAGE, SAFE_METHODS, is_refused_write, record_refused_write


class AuditorReadOnlyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self._allowed: tuple[str, ...] | None = None

    def allowed(self) -> tuple[str, ...]:
        if self._allowed is None:
            self._allowed = (reverse("logout"), reverse("audit:start-job"))
        return self._allowed

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method in SAFE_METHODS or settings.SESSION_COOKIE_NAME not in request.COOKIES:
            # Nothing to refuse here: a read, or no session (API keys get the same rule in
            # serving.authentication), so the session is not loaded on the serving path.
            return self.get_response(request)
        user = getattr(request, "user", None)
        if is_refused_write(user, request.method, request.path) and request.path not in self.allowed():
            record_refused_write(actor=request.user, method=request.method or "", path=request.path)
            return self.refused(request)
        return self.get_response(request)

    @staticmethod
    def refused(request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/v2/"):
            return JsonResponse({"error": MESSAGE}, status=403)
        if request.path.startswith("/api/"):
            return JsonResponse({"error": {"code": "read_only", "message": MESSAGE, "details": None}}, status=403)
        response = TemplateResponse(request, "403.html", {"exception": MESSAGE}, status=403)
        return response.render()
