"""The version API where governance comes in: a version's full record (checks, decisions)
and submitting a draft for review. Thin: parse, call one function, render."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance import services, workflow
from governance.records import version_data
from lifecycle import selectors
from lifecycle.api import CanReadRegistry, VersionOutputSerializer
from lifecycle.models import ModelVersion, RegisteredModel


def _get_version(request: Request, name: str, number: int) -> ModelVersion:
    model = get_object_or_404(RegisteredModel, name=name)
    return get_object_or_404(selectors.visible_versions(request.user, model), version=number)


class VersionDetailApi(APIView):
    permission_classes = [permissions.IsAuthenticated, CanReadRegistry]

    @extend_schema(responses=VersionOutputSerializer)
    def get(self, request: Request, name: str, version: int) -> Response:
        return Response(version_data(_get_version(request, name, version)))


class VersionSubmitApi(APIView):
    permission_classes = [permissions.IsAuthenticated, CanReadRegistry]

    @extend_schema(request=None, responses=VersionOutputSerializer)
    def post(self, request: Request, name: str, version: int) -> Response:
        target = _get_version(request, name, version)
        submitted = workflow.submit_version(target.pk, actor=request.user)
        return Response(version_data(submitted))


class ModelTierApi(APIView):
    """A risk officer sets a model's effective risk tier (governance.rules.can_set_tier)."""

    permission_classes = [permissions.IsAuthenticated, CanReadRegistry]

    class InputSerializer(serializers.Serializer):
        tier = serializers.CharField()
        justification = serializers.CharField()

    @extend_schema(request=InputSerializer, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request, name: str) -> Response:
        model = get_object_or_404(RegisteredModel, name=name)
        data = request.data if isinstance(request.data, dict) else {}
        updated = services.set_risk_tier(
            model.pk,
            actor=request.user,
            tier=str(data.get("tier") or ""),
            justification=str(data.get("justification") or ""),
        )
        return Response(
            {"name": updated.name, "risk_tier": updated.risk_tier, "effective_risk_tier": updated.effective_tier}
        )


class ModelFairnessRequirementsApi(APIView):
    """A risk officer sets the sensitive features a model's fairness check must measure and the
    small groups waived (governance.rules.can_set_fairness_requirements)."""

    permission_classes = [permissions.IsAuthenticated, CanReadRegistry]

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request, name: str) -> Response:
        model = get_object_or_404(RegisteredModel, name=name)
        data = request.data if isinstance(request.data, dict) else {}
        requirement = services.set_fairness_requirements(
            model.pk,
            actor=request.user,
            features=data.get("features", []),
            waivers=data.get("waivers") or {},
            justification=str(data.get("justification") or ""),
        )
        return Response({"name": model.name, "features": requirement.features, "waivers": requirement.waivers})
