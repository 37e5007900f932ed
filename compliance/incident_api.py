"""Serious incidents over the API: risk officers register, risk officers and auditors read and
export. Thin: parse, call compliance.incidents, render."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, renderers, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance import incidents
from compliance.api import PDF_RESPONSE, PdfRenderer
from compliance.models import Incident
from compliance.views import pdf_response
from core.errors import Forbidden
from core.roles import reads_full_audit_trail


class IncidentInputSerializer(serializers.Serializer):
    model = serializers.CharField()
    severity = serializers.ChoiceField(choices=["serious", "death", "widespread"])
    aware_at = serializers.DateTimeField()
    summary = serializers.CharField()
    corrective_actions = serializers.CharField(required=False)
    prediction_ids = serializers.ListField(child=serializers.CharField(), required=False)


class IncidentListApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=IncidentInputSerializer, responses={201: dict})
    def post(self, request: Request) -> Response:
        data: Any = request.data if isinstance(request.data, dict) else {}
        incident = incidents.register_incident(
            actor=request.user,
            model=data.get("model"),
            severity=data.get("severity"),
            aware_at=data.get("aware_at"),
            summary=data.get("summary"),
            prediction_ids=data.get("prediction_ids"),
            corrective_actions=data.get("corrective_actions", ""),
        )
        return Response(incidents.incident_record(incident), status=status.HTTP_201_CREATED)

    def get(self, request: Request) -> Response:
        if not reads_full_audit_trail(request.user):
            raise Forbidden("Only risk officers and auditors read incidents.")
        rows = Incident.objects.select_related("registered_model", "version")[:500]
        return Response({"incidents": [incidents.incident_record(i) for i in rows]})


class IncidentDetailApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    def get(self, request: Request, incident_id: str) -> Response:
        incident = incidents.get_incident(incident_id, actor=request.user)
        record = incidents.incident_record(incident)
        freeze = incidents.verify_freeze(incident)
        return Response({**record, "checkpoint_verification": {"ok": freeze.ok, "message": freeze.message}})


class IncidentReportApi(APIView):
    permission_classes = [permissions.IsAuthenticated]
    renderer_classes = [renderers.JSONRenderer, PdfRenderer]

    @extend_schema(responses=PDF_RESPONSE, description="The art. 73 report of the incident, PDF/A-3b.")
    def get(self, request: Request, incident_id: str) -> HttpResponse:
        report = incidents.export_incident(incident_id, actor=request.user)
        return pdf_response(report, f"incident-{incident_id}.pdf")
