"""`GET /api/v1/models/{name}/history?at=`: what was live at a moment (auditors and risk
officers). Thin: parse the moment, call governance.history.live_at, render."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.periods import PeriodError, parse_moment
from core.roles import reads_full_audit_trail
from governance.history import live_at
from lifecycle.models import RegisteredModel


class AuditorsAndOfficers(permissions.BasePermission):
    message = "Only auditors and risk officers read what was live at a moment."

    def has_permission(self, request: Request, view: Any) -> bool:
        return reads_full_audit_trail(request.user)


def _moment(value: Any) -> datetime:
    """The `at` parameter (core.periods: a date is its first instant; no zone means UTC); now
    when absent. A named 400 when it is not a moment."""
    if isinstance(value, str) and "\x00" in value:
        raise PeriodError("at: the NUL character is not allowed.", field="at")
    return parse_moment(value or "", field="at") or timezone.now()


class ModelHistoryApi(APIView):
    permission_classes = [permissions.IsAuthenticated, AuditorsAndOfficers]

    @extend_schema(parameters=[OpenApiParameter("at", str, description="ISO 8601 moment (default: now)")])
    def get(self, request: Request, name: str) -> Response:
        model = get_object_or_404(RegisteredModel, name=name)
        return Response(live_at(model, _moment(request.query_params.get("at"))))
