"""The JSON serving API (v1) and the auditors' prediction log API. Thin: parse, call one
function, render."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, pagination, permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_errors import error_body
from core.roles import AUDITORS, RISK_OFFICERS, roles_of
from governance.models import Decision, DecisionKind
from serving import external, personal, seals, selectors
from serving.errors import ServingError
from serving.http import caller_of, fast_json_response, parse_json
from serving.keys import KeyRevoked
from serving.models import PredictionLog
from serving.predict import PredictionRequest, predict
from serving.services import may_report_outcome, record_outcome
from serving.throttling import ApiKeyRateThrottle


def error_response(code: str, message: str, http_status: int, details: Any = None) -> Response:
    return Response(error_body(code, message, details), status=http_status)


def serving_error(exc: ServingError) -> Response:
    return error_response(exc.code, exc.message, exc.status, exc.details)


class PredictRequestSerializer(serializers.Serializer):
    instances = serializers.ListField(child=serializers.DictField(), help_text="One object per row: feature: value")
    version = serializers.IntegerField(required=False, help_text="An approved version; default: production")
    request_id = serializers.CharField(required=False)
    business_keys = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="One key per instance (e.g. the application id)"
    )
    explain = serializers.BooleanField(required=False, help_text="Return (and log) each row's explanation")


class PredictResponseSerializer(serializers.Serializer):
    model = serializers.CharField()
    version = serializers.IntegerField()
    predictions = serializers.ListField()
    probabilities = serializers.ListField(child=serializers.ListField(child=serializers.FloatField()), required=False)
    classes = serializers.ListField(required=False)
    prediction_ids = serializers.ListField(child=serializers.CharField())
    request_id = serializers.CharField()


class ModelPredictApi(APIView):
    """Predictions from the production version (or a named approved version), logged first."""

    permission_classes = [permissions.IsAuthenticated]
    throttle_classes = [ApiKeyRateThrottle]
    key_rechecked_at_write = True  # serving.predict re-checks the key in the log INSERT

    @extend_schema(request=PredictRequestSerializer, responses={200: PredictResponseSerializer})
    def post(self, request: Request, name: str) -> HttpResponse | Response:
        try:
            served = predict(v1_request(request, name))
        except KeyRevoked as exc:
            raise exceptions.AuthenticationFailed(exc.message)
        except ServingError as exc:
            return serving_error(exc)
        data: dict[str, Any] = {
            "model": name,
            "version": served.version.version,
            "predictions": served.labels,
            "prediction_ids": served.prediction_ids,
            "request_id": served.record.request_id or str(served.record.public_id),
        }
        if served.probabilities is not None:
            data["probabilities"] = served.probabilities
            data["classes"] = served.version.classes
        if served.business_keys:
            data["business_keys"] = served.business_keys
        if served.explanations is not None:
            data["explanations"] = served.explanations
        return fast_json_response(data)


def v1_request(request: Request, name: str) -> PredictionRequest:
    """The v1 body as a PredictionRequest; what is wrong with it becomes the request's problem."""
    caller = caller_of(request)
    raw: bytes | None = None  # the body as sent: a refusal logs its SHA-256 and size

    def refused(message: str, status: int, code: str) -> PredictionRequest:
        problem = ServingError(message, status=status, code=code)
        request_id = request.headers.get("X-Request-ID", "")
        return PredictionRequest(caller, name, "v1", request_id=request_id, problem=problem, body=raw)

    try:
        raw = request.body
        body = parse_json(raw)
    except RequestDataTooBig:
        return refused("The request body is too large.", 413, "too_large")
    except (ValueError, UnicodeDecodeError) as exc:
        return refused(f"The body is not valid JSON: {exc}", 400, "malformed_json")
    if not isinstance(body, dict):
        return refused('Send a JSON object: {"instances": [...]}.', 400, "invalid_input")
    version = body.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        return refused('"version" must be an integer.', 400, "invalid_input")
    request_id = str(body.get("request_id") or request.headers.get("X-Request-ID", ""))
    explain = body.get("explain", False)
    if not isinstance(explain, bool):
        return refused('"explain" must be true or false.', 400, "invalid_input")
    return PredictionRequest(
        caller,
        name,
        "v1",
        version_number=version,
        request_id=request_id,
        instances=body.get("instances"),
        business_keys=body.get("business_keys"),
        body=raw,
        explain=explain,
    )


class IsAuditorOrOfficer(permissions.BasePermission):
    message = "Only auditors and risk officers read the prediction log."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(roles_of(request.user) & {AUDITORS, RISK_OFFICERS})


class PredictionCursor(pagination.CursorPagination):
    ordering = "-pk"
    page_size = 100
    max_page_size = 1000
    page_size_query_param = "page_size"


def record_data(record: PredictionLog) -> dict[str, Any]:
    """A logged record for auditors: personal values decrypted, or "[erased]" (serving.personal;
    a wrong LOG_KEK raises KeysUnavailable, a 503)."""
    inputs, business_keys = personal.reveal_record(record)
    return {
        "id": str(record.public_id),
        "created_at": record.created_at,
        "model": record.model_name,
        "version": record.version_number,
        "caller": record.caller,
        "request_id": record.request_id,
        "protocol": record.protocol,
        "outcome": record.outcome,
        "reason": record.reason,
        "n_rows": record.n_rows,
        "prediction_ids": [f"{record.public_id}.{i}" for i in range(record.n_rows)],
        "inputs": inputs,
        "outputs": personal.reveal_outputs(record.public_id, record.outputs),
        "engine": record.engine,
        "latency_ms": record.latency_ms,
        "seal": record.seal_id,
        "business_keys": business_keys,
    }


class PredictionListApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsAuditorOrOfficer]

    @extend_schema(
        parameters=[
            OpenApiParameter("model", str),
            OpenApiParameter("version", int),
            OpenApiParameter("since", OpenApiTypes.DATETIME),
            OpenApiParameter("until", OpenApiTypes.DATETIME),
            OpenApiParameter("outcome", str),
            OpenApiParameter("request_id", str),
            OpenApiParameter("business_key", str),
        ],
        responses=inline_serializer(
            "PredictionPage",
            {
                "next": serializers.CharField(allow_null=True),
                "previous": serializers.CharField(allow_null=True),
                "results": serializers.ListField(child=serializers.DictField()),
            },
        ),
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        stamp = serializers.DateTimeField()
        try:
            qs = selectors.logged_predictions(
                model=params.get("model", ""),
                version=int(params["version"]) if params.get("version") else None,
                since=stamp.to_internal_value(params["since"]) if params.get("since") else None,
                until=stamp.to_internal_value(params["until"]) if params.get("until") else None,
                outcome=params.get("outcome", ""),
                request_id=params.get("request_id", ""),
                business_key=params.get("business_key", ""),
            )
        except (ValueError, serializers.ValidationError) as exc:
            return error_response("invalid_filter", f"Bad filter: {exc}", 400)
        paginator = PredictionCursor()
        page = paginator.paginate_queryset(qs, request, view=self)
        try:
            return paginator.get_paginated_response([record_data(r) for r in page or []])
        except ServingError as exc:
            return serving_error(exc)


def _find(prediction_id: str) -> tuple[PredictionLog, int | None]:
    if not selectors.PREDICTION_ID.match(prediction_id):
        raise ServingError(f"{prediction_id!r} is not a prediction id.", status=404, code="not_found")
    record, row = selectors.prediction_row(prediction_id)
    if record is None:
        raise ServingError(f"There is no prediction {prediction_id}.", status=404, code="not_found")
    return record, row


find_prediction = _find  # (shared with serving.decision_api and the receipt)


class PredictionDetailApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsAuditorOrOfficer]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, prediction_id: str) -> Response:
        try:
            record, row = _find(prediction_id)
        except ServingError as exc:
            return serving_error(exc)
        try:
            data = record_data(record)
        except ServingError as exc:
            return serving_error(exc)
        if row is not None:
            data["row"] = row
            data["row_input"] = data["inputs"][row]
            data["row_output"] = {k: v[row] for k, v in data["outputs"].items() if k != "classes"}
        approvals = []
        if record.version is not None:
            approvals = [
                {
                    "by": d.actor_username,
                    "at": d.created_at,
                    "justification": d.justification,
                    "override": d.override,
                    "kind": d.kind,
                    "artifact_sha256": d.artifact_sha256,
                }
                for d in Decision.objects.filter(
                    version=record.version, kind__in=[DecisionKind.APPROVE, DecisionKind.DEPLOY]
                )
            ]
            data["version_detail"] = {
                "model": record.version.registered_model.name,
                "version": record.version.version,
                "status": record.version.status,
                "artifact_sha256": record.version.artifact_sha256,
            }
        data["decisions"] = approvals
        data["inclusion_proof"] = seals.inclusion_proof(record)
        data["outcomes"] = [
            {"row": o.row, "actual": o.actual, "received_at": o.received_at} for o in record.actuals.all()
        ]
        return Response(data)


class PredictionOutcomeApi(APIView):
    """Ground truth arriving later, for one predicted row."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        request=inline_serializer(
            "Outcome", {"actual": serializers.JSONField(), "sensitive": serializers.DictField(required=False)}
        ),
        responses={201: OpenApiTypes.OBJECT},
    )
    def post(self, request: Request, prediction_id: str) -> Response:
        caller = caller_of(request)
        try:
            record, row = _find(prediction_id)
            if not may_report_outcome(record, user=request.user, api_key=caller.api_key):
                raise ServingError(
                    "Only the API key that received this prediction, a data scientist or a risk officer reports "
                    "its outcome.",
                    status=403,
                    code="forbidden",
                )
            if row is None:
                raise ServingError("Name one predicted row: <id>.<row>.", status=400, code="invalid_input")
            body = parse_json(request.body)  # (depth and lone surrogates refused, as for predictions)
            if not isinstance(body, dict) or "actual" not in body:
                raise ServingError('Send {"actual": value}.', status=400, code="invalid_input")
            outcome = record_outcome(
                record=record,
                row=row,
                actual=body["actual"],
                reporter=caller.name,
                actor=request.user,
                sensitive=body.get("sensitive"),
            )
        except ServingError as exc:
            return serving_error(exc)
        except ValueError as exc:
            return error_response("malformed_json", f"The body is not valid JSON: {exc}", 400)
        return Response({"prediction_id": prediction_id, "actual": outcome.actual}, status=201)


class ExternalDecisionsApi(APIView):
    """A vendor or external model's decisions, logged by the client that received them (201)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=OpenApiTypes.OBJECT, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, name: str) -> Response:
        try:
            body = parse_json(request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            return error_response("malformed_json", f"The body is not valid JSON: {exc}", 400)
        try:
            record = external.record_external_decisions(model_name=name, caller=caller_of(request), body=body)
        except ServingError as exc:
            return serving_error(exc)
        ids = [f"{record.public_id}.{i}" for i in range(record.n_rows)]
        return Response({"model": name, "source": record.source, "prediction_ids": ids}, status=201)
