"""The data subjects API: erasure (GDPR art. 17) by risk officers. Thin: serving.personal
holds the rule."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.roles import RISK_OFFICERS, roles_of
from lifecycle.models import RegisteredModel
from serving import erasure
from serving.api import error_response, serving_error
from serving.errors import ServingError


class IsRiskOfficer(permissions.BasePermission):
    message = "Only risk officers erase a data subject's personal data."

    def has_permission(self, request: Request, view: Any) -> bool:
        return RISK_OFFICERS in roles_of(request.user)


class SubjectErasureApi(APIView):
    """Destroy a data subject's keys in one model's log: their personal values read "[erased]"."""

    permission_classes = [permissions.IsAuthenticated, IsRiskOfficer]

    @extend_schema(
        request=inline_serializer("Erasure", {"model": serializers.CharField(), "subject": serializers.CharField()}),
        responses={
            200: inline_serializer(
                "Erased", {"model": serializers.CharField(), "keys_erased": serializers.IntegerField()}
            )
        },
    )
    def post(self, request: Request) -> Response:
        body = request.data if isinstance(request.data, dict) else {}
        model, subject = body.get("model"), body.get("subject")
        if not isinstance(model, str) or not model or not isinstance(subject, str | int) or isinstance(subject, bool):
            return error_response(
                "invalid_erasure", 'Send {"model": name, "subject": the subject\'s value (text or number)}.', 400
            )
        if str(subject) == "" or "\x00" in str(subject) or len(str(subject)) > 500:
            return error_response(
                "invalid_erasure", "The subject must be a non-empty text of at most 500 characters.", 400
            )
        if "\x00" in model or not RegisteredModel.objects.filter(name=model).exists():
            return error_response("not_found", "There is no model of that name.", 404)
        try:
            erased = erasure.erase_subject(model_name=model, subject=str(subject), actor=request.user)
        except ServingError as exc:
            return serving_error(exc)
        return Response({"model": model, "keys_erased": erased})
