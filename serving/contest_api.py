"""`POST /api/v1/predictions/{id}.{row}/contest` (the API key that received the decision) and its
`GET` (the cases of that row and their answers). Thin: serving.contest holds the rule."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from serving import contest, decisions
from serving.api import error_response, serving_error
from serving.decision_api import find_row
from serving.errors import ServingError
from serving.http import caller_of, parse_json
from serving.models import Contestation


class PredictionContestApi(APIView):
    """An affected person's contestation of one decision, sent by the client that received it:
    201 with `respond_by` (30 days); case officers answer it in the oversight queue."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        request=inline_serializer("ContestInput", {"statement": serializers.CharField()}),
        responses={201: OpenApiTypes.OBJECT},
    )
    def post(self, request: Request, prediction_id: str) -> Response:
        caller = caller_of(request)
        try:
            record, row = find_row(prediction_id)
            body = parse_json(request.body)
            if not isinstance(body, dict) or not isinstance(body.get("statement"), str):
                raise ServingError('Send {"statement": "..."}: the person\'s words.', status=400, code="invalid_input")
            case = contest.contest_decision(
                record=record,
                row=row,
                statement=body["statement"],
                caller=caller.name,
                api_key=caller.api_key,
                actor=request.user,
            )
        except ServingError as exc:
            return serving_error(exc)
        except ValueError as exc:
            return error_response("malformed_json", f"The body is not valid JSON: {exc}", 400)
        return Response(contest.case_data(case), status=201)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, prediction_id: str) -> Response:
        caller = caller_of(request)
        try:
            record, row = find_row(prediction_id)
            decisions.require_read(record, actor=request.user, api_key=caller.api_key)
        except ServingError as exc:
            return serving_error(exc)
        cases = Contestation.objects.filter(record=record, row=row).select_related("record", "answer__review")
        return Response({"prediction_id": prediction_id, "contestations": [contest.case_data(c) for c in cases]})
