"""`GET /api/v1/models/{name}/history?at=`: what was live at a moment (auditors and risk
officers). Thin: parse the moment, call governance.history.live_at, render."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import DomainError
from core.roles import reads_full_audit_trail
from governance.history import live_at
from lifecycle.models import RegisteredModel


class AuditorsAndOfficers(permissions.BasePermission):
    message = "Only auditors and risk officers read what was live at a moment."

    def has_permission(self, request: Request, view: Any) -> bool:
        return reads_full_audit_trail(request.user)


def parse_moment(value: Any, field: str) -> datetime:
    """An ISO 8601 moment; without a zone it is read as UTC. A named 400 otherwise."""
    if value in (None, ""):
        return timezone.now()
    try:
        moment = parse_datetime(str(value)) if "\x00" not in str(value) else None
    except ValueError:
        moment = None
    if moment is None:
        raise DomainError(f"{field} must be an ISO 8601 moment, e.g. 2026-03-03T12:00:00Z.", field=field)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class ModelHistoryApi(APIView):
    permission_classes = [permissions.IsAuthenticated, AuditorsAndOfficers]

    @extend_schema(parameters=[OpenApiParameter("at", str, description="ISO 8601 moment (default: now)")])
    def get(self, request: Request, name: str) -> Response:
        model = get_object_or_404(RegisteredModel, name=name)
        return Response(live_at(model, parse_moment(request.query_params.get("at"), "at")))
