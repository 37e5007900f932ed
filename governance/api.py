"""The version API where governance comes in: a version's full record (checks, decisions)
and submitting a draft for review. Thin: parse, call one function, render."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.periods import parse_moment
from core.roles import AUDITORS, RISK_OFFICERS, VALIDATORS, roles_of
from governance import benchmark, overlays, retraining, rules, services, validation, workflow
from governance.errors import WorkflowError
from governance.policies import active_policy
from governance.records import version_data
from lifecycle import selectors
from lifecycle.api import CanReadRegistry, VersionOutputSerializer
from lifecycle.errors import Forbidden
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


class ValidationInputSerializer(serializers.Serializer):
    conclusion = serializers.CharField(help_text="fit_for_use, fit_with_conditions or not_fit")
    sections = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        help_text="conceptual_soundness, data, outcomes_analysis, limitations, compensating_controls",
    )
    conditions = serializers.ListField(child=serializers.CharField(), required=False)


class VersionValidationApi(APIView):
    """POST: a validator's report on the version (201); GET: the version's reports."""

    permission_classes = [permissions.IsAuthenticated, CanReadRegistry]

    def _answer(self, target: ModelVersion) -> dict[str, Any]:
        latest = rules.latest_validation(target)
        return {
            "model": target.registered_model.name,
            "version": target.version,
            "required": active_policy().validation_required_for(target.registered_model.effective_tier),
            "in_force": latest.pk if latest is not None else None,
            "reports": [validation.report_data(r) for r in validation.reports_of(target)],
        }

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, name: str, version: int) -> Response:
        return Response(self._answer(_get_version(request, name, version)))

    @extend_schema(request=ValidationInputSerializer, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, name: str, version: int) -> Response:
        target = _get_version(request, name, version)
        data = request.data if isinstance(request.data, dict) else {}
        report = validation.record_validation(
            target.pk,
            actor=request.user,
            conclusion=data.get("conclusion"),
            sections=data.get("sections"),
            conditions=data.get("conditions"),
        )
        return Response(validation.report_data(report), status=status.HTTP_201_CREATED)


class VersionBenchmarkApi(APIView):
    """The benchmark and sensitivity analysis a validator cites (governance.benchmark)."""

    permission_classes = [permissions.IsAuthenticated, CanReadRegistry]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, name: str, version: int) -> Response:
        if not roles_of(request.user) & {VALIDATORS, RISK_OFFICERS, AUDITORS}:
            raise Forbidden("Only validators, risk officers and auditors read the benchmark.")
        return Response(benchmark.benchmark(_get_version(request, name, version)))


class ModelOverlaysApi(APIView):
    """POST: record a limitation or overlay on the model (risk officers; 201); GET: its register."""

    permission_classes = [permissions.IsAuthenticated, CanReadRegistry]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, name: str) -> Response:
        model = get_object_or_404(RegisteredModel, name=name)
        rows = model.overlays.select_related("owner", "registered_model").order_by("expires_at", "pk")
        return Response({"model": name, "overlays": [overlays.overlay_data(o) for o in rows]})

    @extend_schema(request=OpenApiTypes.OBJECT, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, name: str) -> Response:
        model = get_object_or_404(RegisteredModel, name=name)
        data = request.data if isinstance(request.data, dict) else {}
        overlay = overlays.record_overlay(
            model.pk,
            actor=request.user,
            kind=data.get("kind"),
            owner=data.get("owner"),
            reason=data.get("reason"),
            adjustment=data.get("adjustment"),
            starts_at=parse_moment(str(data.get("starts_at") or ""), field="starts_at"),
            expires_at=parse_moment(str(data.get("expires_at") or ""), field="expires_at"),
        )
        return Response(overlays.overlay_data(overlay), status=status.HTTP_201_CREATED)


class FindingRetrainingApi(APIView):
    """POST {"reason"}: a risk officer asks the model's owner to retrain, from a finding (201)."""

    permission_classes = [permissions.IsAuthenticated, CanReadRegistry]

    @extend_schema(request=OpenApiTypes.OBJECT, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, finding_id: int) -> Response:
        data = request.data if isinstance(request.data, dict) else {}
        opened = retraining.open_request(finding_id, actor=request.user, reason=str(data.get("reason") or ""))
        return Response(retraining.request_data(opened), status=status.HTTP_201_CREATED)


class VersionRetrainingApi(APIView):
    """POST {"request": id}: this (new) version answers a retraining request, which closes it."""

    permission_classes = [permissions.IsAuthenticated, CanReadRegistry]

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request, name: str, version: int) -> Response:
        target = _get_version(request, name, version)
        data = request.data if isinstance(request.data, dict) else {}
        number = data.get("request")
        if isinstance(number, bool) or not isinstance(number, int):
            raise WorkflowError('"request" must be the id of a retraining request.', field="request", status=400)
        answered = retraining.answer_request(number, version_id=target.pk, actor=request.user)
        return Response(retraining.request_data(answered))


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
