"""Compliance reports over the API, for auditors and risk officers (session or API key bound to
such a person): the same PDF/A as the pages, with its SHA-256 in a header and in the trail."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, renderers
from rest_framework.request import Request
from rest_framework.views import APIView

from compliance import receipts, services, techdoc
from compliance.errors import ReportError
from compliance.views import pdf_response
from core.periods import parse_moment
from lifecycle.models import ModelVersion
from serving import api as serving_api
from serving.decision_api import find_row
from serving.http import caller_of


class IsAuditorOrOfficer(serving_api.IsAuditorOrOfficer):
    message = "Only auditors and risk officers get compliance reports."


class PdfRenderer(renderers.BaseRenderer):
    """Lets clients send `Accept: application/pdf`; errors still go out as JSON text."""

    media_type = "application/pdf"
    format = "pdf"
    charset = None

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return data if isinstance(data, bytes) else json.dumps(data).encode()


PDF_RESPONSE = {(200, "application/pdf"): OpenApiTypes.BINARY}


class VersionReportApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsAuditorOrOfficer]
    renderer_classes = [renderers.JSONRenderer, PdfRenderer]

    @extend_schema(responses=PDF_RESPONSE, description="The version's compliance report, PDF/A-3b.")
    def get(self, request: Request, name: str, version: int) -> HttpResponse:
        v = get_object_or_404(ModelVersion, registered_model__name=name, version=version)
        report = services.generate_version_report(v.pk, actor=request.user)
        return pdf_response(report, f"{name}-v{version}-compliance-report.pdf")


class TechnicalDocumentationApi(APIView):
    """The EU AI Act Annex IV technical documentation of a version (auditors and risk officers)."""

    permission_classes = [permissions.IsAuthenticated, IsAuditorOrOfficer]
    renderer_classes = [renderers.JSONRenderer, PdfRenderer]

    @extend_schema(
        responses=PDF_RESPONSE,
        description="The version's technical documentation in the nine sections of EU AI Act Annex IV, PDF/A-3b.",
    )
    def get(self, request: Request, name: str, version: int) -> HttpResponse:
        v = get_object_or_404(ModelVersion, registered_model__name=name, version=version)
        report = techdoc.generate_technical_documentation(v.pk, actor=request.user)
        return pdf_response(report, f"{name}-v{version}-technical-documentation.pdf")


class PeriodReportApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsAuditorOrOfficer]
    renderer_classes = [renderers.JSONRenderer, PdfRenderer]

    @extend_schema(
        parameters=[
            OpenApiParameter("since", str, required=True, description="YYYY-MM-DD or ISO 8601 date-time"),
            OpenApiParameter("until", str, required=True, description="YYYY-MM-DD (included) or date-time"),
        ],
        responses=PDF_RESPONSE,
        description="Decisions, deployments, overrides, policy changes and prediction volumes of a period.",
    )
    def get(self, request: Request) -> HttpResponse:
        since = parse_moment(request.query_params.get("since", ""), field="since")
        until = parse_moment(request.query_params.get("until", ""), field="until", end=True)
        if since is None or until is None:
            raise ReportError("Give both since and until.", field="since" if since is None else "until")
        report = services.generate_period_report(since=since, until=until, actor=request.user)
        return pdf_response(report, services.period_filename(since=since, until=until))


class DecisionReceiptApi(APIView):
    """The receipt of one decision (PDF/A-3b): auditors, risk officers and the API key that
    received the decision."""

    permission_classes = [permissions.IsAuthenticated]
    renderer_classes = [renderers.JSONRenderer, PdfRenderer]

    @extend_schema(responses=PDF_RESPONSE, description="One decision's receipt, PDF/A-3b.")
    def get(self, request: Request, prediction_id: str) -> HttpResponse:
        caller = caller_of(request)
        record, row = find_row(prediction_id)
        report = receipts.generate_receipt(record, row, actor=request.user, api_key=caller.api_key)
        return pdf_response(report, f"decision-receipt-{record.public_id}.{row}.pdf")
