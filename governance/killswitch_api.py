"""The kill switch's API (risk officers): designate the fallback, stop, resume. Thin: parse,
call one function of governance.killswitch, render the model's switch."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance import killswitch
from governance.errors import WorkflowError
from lifecycle.models import RegisteredModel
from lifecycle.records import kill_switch_record


def _justification(request: Request) -> Any:
    """The justification as sent (the service refuses a missing or blank one, after the role)."""
    return request.data.get("justification") if isinstance(request.data, dict) else None


def _answer(model: RegisteredModel) -> Response:
    model.refresh_from_db()
    return Response({"model": model.name, **kill_switch_record(model)})


class SwitchOutputSerializer(serializers.Serializer):
    model = serializers.CharField()
    stopped = serializers.BooleanField()
    stopped_at = serializers.DateTimeField(allow_null=True)
    stopped_reason = serializers.CharField()
    fallback_version = serializers.IntegerField(allow_null=True)


class ModelFallbackApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    class InputSerializer(serializers.Serializer):
        version = serializers.IntegerField(allow_null=True, min_value=1, max_value=2**31 - 1)
        justification = serializers.CharField()

    @extend_schema(request=InputSerializer, responses=SwitchOutputSerializer)
    def post(self, request: Request, name: str) -> Response:
        model = get_object_or_404(RegisteredModel, name=name)
        killswitch.require_officer(request.user, "designate fallback versions")  # 403 before any 400
        data: Any = request.data if isinstance(request.data, dict) else {}
        if "version" not in data:
            raise WorkflowError(
                '"version" is required (a version number, or null for no fallback).', field="version", status=400
            )
        version = data["version"]
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise WorkflowError('"version" must be a version number or null.', field="version", status=400)
        killswitch.designate_fallback(
            model.pk, actor=request.user, version_number=version, justification=_justification(request)
        )
        return _answer(model)


class ModelStopApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses=SwitchOutputSerializer)
    def post(self, request: Request, name: str) -> Response:
        model = get_object_or_404(RegisteredModel, name=name)
        killswitch.stop_model(model.pk, actor=request.user, justification=_justification(request))
        return _answer(model)


class ModelResumeApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses=SwitchOutputSerializer)
    def post(self, request: Request, name: str) -> Response:
        model = get_object_or_404(RegisteredModel, name=name)
        killswitch.resume_model(model.pk, actor=request.user, justification=_justification(request))
        return _answer(model)
