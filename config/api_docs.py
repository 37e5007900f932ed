"""Who reads the API schema and Swagger UI: anyone while API_DOCS_REQUIRE_LOGIN is off (DEBUG),
else a session or an API key."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import permissions
from rest_framework.request import Request


class DocsReader(permissions.BasePermission):
    message = "Log in (or send an API key) to read the API schema and docs."

    def has_permission(self, request: Request, view: Any) -> bool:
        return not settings.API_DOCS_REQUIRE_LOGIN or bool(request.user and request.user.is_authenticated)
