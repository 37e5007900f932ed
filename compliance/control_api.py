"""The control map over the API (auditors and risk officers read it; risk officers attest a
control). Thin: parse, call compliance.controls, render."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, renderers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance import controls
from compliance.api import PDF_RESPONSE, IsAuditorOrOfficer, PdfRenderer
from compliance.views import pdf_response
from core.periods import PeriodError, parse_moment
from lifecycle.models import RegisteredModel

AS_OF = OpenApiParameter("as_of", str, description="YYYY-MM-DD (the end of that day, UTC) or ISO 8601; default now")


def as_of(value: Any) -> datetime:
    """`as_of`: a date means the end of that day (UTC); a date-time that moment; absent: now."""
    if isinstance(value, str) and "\x00" in value:
        raise PeriodError("as_of: the NUL character is not allowed.", field="as_of")
    moment = parse_moment(value or "", field="as_of", end=True)
    return moment if moment is not None else timezone.now()


class ModelControlsApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsAuditorOrOfficer]

    @extend_schema(parameters=[AS_OF])
    def get(self, request: Request, name: str) -> Response:
        model = get_object_or_404(RegisteredModel, name=name)
        return Response(controls.control_map(model, as_of(request.query_params.get("as_of"))))


class ModelControlsPdfApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsAuditorOrOfficer]
    renderer_classes = [renderers.JSONRenderer, PdfRenderer]

    @extend_schema(parameters=[AS_OF], responses=PDF_RESPONSE, description="The control map as PDF/A-3b.")
    def get(self, request: Request, name: str) -> HttpResponse:
        model = get_object_or_404(RegisteredModel, name=name)
        moment = as_of(request.query_params.get("as_of"))
        report = controls.export_controls(model.pk, moment, actor=request.user)
        return pdf_response(report, f"{name}-controls-{moment:%Y-%m-%d}.pdf")


class ControlAttestApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses={201: dict})
    def post(self, request: Request, name: str, control_id: str) -> Response:
        model = get_object_or_404(RegisteredModel, name=name)
        data: Any = request.data if isinstance(request.data, dict) else {}
        attestation = controls.attest_control(model.pk, control_id, actor=request.user, statement=data.get("statement"))
        return Response(
            {
                "model": model.name,
                "control": attestation.control_id,
                "by": attestation.attested_by_username,
                "at": attestation.attested_at,
                "statement": attestation.statement,
            },
            status=status.HTTP_201_CREATED,
        )
