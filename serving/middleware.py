from __future__ import annotations

import os
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class WorkerPidMiddleware:
    """Adds X-Worker-PID to responses (only when EXPOSE_WORKER_PID is set), so a test can prove
    that every server process refuses a retired version."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.pid = str(os.getpid())

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response["X-Worker-PID"] = self.pid
        return response
