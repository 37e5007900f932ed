"""One decision's API: its explanation and people's reviews of it. Thin: authorise, parse, call
one function of serving.decisions, render."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lifecycle.errors import ArtifactIntegrityError
from serving import decisions
from serving.api import error_response, find_prediction, serving_error
from serving.errors import ServingError
from serving.http import caller_of, parse_json
from serving.models import DecisionReview, PredictionLog


def find_row(prediction_id: str) -> tuple[PredictionLog, int]:
    record, row = find_prediction(prediction_id)
    if row is None:
        raise ServingError("Name one predicted row: <id>.<row>.", status=400, code="invalid_input")
    return record, row


class PredictionExplanationApi(APIView):
    """The explanation of one logged row: computed once, stored and audited; every call returns
    the stored one."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, prediction_id: str) -> Response:
        caller = caller_of(request)
        try:
            record, row = find_row(prediction_id)
            explanation = decisions.explanation_of(record, row, actor=request.user, api_key=caller.api_key)
        except ServingError as exc:
            return serving_error(exc)
        except ArtifactIntegrityError as exc:
            return error_response("artifact_tampered", exc.message, 503)
        return Response({**explanation.payload, "sha256": explanation.sha256, "computed_at": explanation.created_at})


class PredictionReviewApi(APIView):
    """A person's review of one automated decision (confirmed or overridden), and the reviews so far."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        request=inline_serializer(
            "DecisionReviewInput",
            {
                "action": serializers.ChoiceField(choices=["confirmed", "overridden"]),
                "final_decision": serializers.JSONField(required=False),
                "justification": serializers.CharField(),
            },
        ),
        responses={201: OpenApiTypes.OBJECT},
    )
    def post(self, request: Request, prediction_id: str) -> Response:
        caller = caller_of(request)
        try:
            record, row = find_row(prediction_id)
            if not decisions.may_act_on(record, user=request.user, api_key=caller.api_key):
                raise ServingError(
                    "Only the API key that received this decision, a data scientist or a risk officer reviews it.",
                    status=403,
                    code="forbidden",
                )
            body = parse_json(request.body)  # (depth and lone surrogates refused, as for predictions)
            if not isinstance(body, dict):
                raise ServingError(
                    'Send {"action": "confirmed"|"overridden", "final_decision": ..., "justification": "..."}.',
                    status=400,
                    code="invalid_input",
                )
            review = decisions.review_decision(
                record=record,
                row=row,
                action=str(body.get("action") or ""),
                final_decision=body.get("final_decision"),
                justification=str(body.get("justification") or ""),
                reviewer=caller.name,
                actor=request.user,
            )
        except ServingError as exc:
            return serving_error(exc)
        except ValueError as exc:
            return error_response("malformed_json", f"The body is not valid JSON: {exc}", 400)
        return Response({"prediction_id": prediction_id, **decisions.review_data(review)}, status=201)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, prediction_id: str) -> Response:
        caller = caller_of(request)
        try:
            record, row = find_row(prediction_id)
            decisions.require_read(record, actor=request.user, api_key=caller.api_key)
        except ServingError as exc:
            return serving_error(exc)
        reviews = DecisionReview.objects.filter(record=record, row=row).order_by("seq")
        return Response({"prediction_id": prediction_id, "reviews": [decisions.review_data(r) for r in reviews]})
