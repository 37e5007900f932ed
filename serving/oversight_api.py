"""`GET|POST /api/v1/models/{name}/oversight`: a model's human-oversight routing rule (risk
officers set it, with a justification). Thin: serving.oversight holds the rule."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from serving import oversight
from serving.api import error_response, serving_error
from serving.errors import ServingError
from serving.models import OversightRule


def rule_data(rule: OversightRule | None, name: str) -> dict[str, Any]:
    if rule is None:
        return {"model": name, "rule": None}
    return {
        "model": name,
        "rule": {
            "adverse": rule.adverse,
            "band": rule.band,
            "segments": rule.segments,
            "due_hours": rule.due_hours,
            "active": rule.active,
            "changed_by": rule.changed_by_username,
            "justification": rule.justification,
        },
    }


class ModelOversightApi(APIView):
    """Which of the model's decisions go to the human-oversight queue."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, name: str) -> Response:
        if not oversight.may_work_queue(request.user):
            return error_response("forbidden", "Only case officers and risk officers read oversight rules.", 403)
        return Response(rule_data(OversightRule.objects.filter(model_name=name).first(), name))

    @extend_schema(
        request=inline_serializer(
            "OversightRuleInput",
            {
                "adverse": serializers.BooleanField(required=False),
                "band": serializers.FloatField(required=False, allow_null=True),
                "segments": serializers.DictField(required=False),
                "due_hours": serializers.IntegerField(required=False),
                "active": serializers.BooleanField(required=False),
                "justification": serializers.CharField(),
            },
        ),
        responses={200: OpenApiTypes.OBJECT},
    )
    def post(self, request: Request, name: str) -> Response:
        body = request.data if isinstance(request.data, dict) else {}
        band, due = body.get("band"), body.get("due_hours", 72)
        if band is not None and (isinstance(band, bool) or not isinstance(band, int | float)):
            return error_response("invalid_input", '"band" is a number (a distance from 0.5) or null.', 400)
        if isinstance(due, bool) or not isinstance(due, int) or not 1 <= due <= 24 * 365:
            return error_response("invalid_input", '"due_hours" is a whole number of hours, 1 to 8760.', 400)
        segments = body.get("segments") or {}
        if not isinstance(segments, dict):
            return error_response("invalid_input", '"segments" is {"feature": ["value", ...]}.', 400)
        try:
            rule = oversight.set_oversight_rule(
                model_name=name,
                actor=request.user,
                justification=str(body.get("justification") or ""),
                adverse=bool(body.get("adverse", True)),
                band=float(band) if band is not None else None,
                segments=segments,
                due_hours=due,
                active=bool(body.get("active", True)),
            )
        except ServingError as exc:
            return serving_error(exc)
        return Response(rule_data(rule, name))
