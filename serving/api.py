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
from serving import decisions, external, personal, seals, selectors
from serving.errors import ServingError
from serving.http import TooDeep, caller_of, fast_json_response, parse_json
from serving.keys import KeyRevoked
from serving.models import PredictionLog
from serving.predict import PredictionRequest, predict
from serving.services import may_report_outcome, record_outcome, refusal
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
    except TooDeep as exc:
        return refused(f"The body is refused: {exc}.", 400, "too_deep")
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


class AuthCheckApi(APIView):
    """nginx's auth_request before an upload route reads a body (config/nginx.conf.template): 204
    for a valid key or session, 401 otherwise; 204 for a request without a body (GET, HEAD,
    OPTIONS: the route's own view decides). Headers only, one key lookup: nothing is parsed."""

    permission_classes = [permissions.AllowAny]
    BODILESS = ("GET", "HEAD", "OPTIONS")

    def perform_authentication(self, request: Request) -> None:
        pass  # (asked below, and only for an upload)

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        if request.headers.get("X-Original-Method", "POST").upper() in self.BODILESS:
            return Response(status=204)
        try:
            known = bool(request.user and request.user.is_authenticated)
        except exceptions.AuthenticationFailed:
            known = False
        return Response(status=204 if known else 401)


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
            OpenApiParameter(
                "business_key",
                str,
                description="Prefer POST /api/v1/predictions/search with the filters in a JSON body: a URL's "
                "query string is kept by access logs, and a business key names a data subject.",
            ),
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
        return _prediction_page(request, self, request.query_params)


SEARCH_FILTERS = ("model", "version", "since", "until", "outcome", "request_id", "business_key")


def _prediction_page(request: Request, view: APIView, params: Any) -> Response:
    """One page of the log, filtered by `params` (the query string, or a search's JSON body)."""
    stamp = serializers.DateTimeField()
    try:
        qs = selectors.logged_predictions(
            model=str(params.get("model") or ""),
            version=int(params["version"]) if params.get("version") else None,
            since=stamp.to_internal_value(params["since"]) if params.get("since") else None,
            until=stamp.to_internal_value(params["until"]) if params.get("until") else None,
            outcome=str(params.get("outcome") or ""),
            request_id=str(params.get("request_id") or ""),
            business_key=str(params.get("business_key") or ""),
        )
    except (ValueError, TypeError, serializers.ValidationError) as exc:
        return error_response("invalid_filter", f"Bad filter: {exc}", 400)
    paginator = PredictionCursor()
    page = paginator.paginate_queryset(qs, request, view=view)
    try:
        return paginator.get_paginated_response([record_data(r) for r in page or []])
    except ServingError as exc:
        return serving_error(exc)


class PredictionSearchApi(APIView):
    """The prediction log's filters as a JSON body, so that a business key (which names a data
    subject) never travels in a URL, where access logs keep it. The next page: POST the same body
    to the `next` link (its query string holds only the cursor)."""

    permission_classes = [permissions.IsAuthenticated, IsAuditorOrOfficer]

    @extend_schema(
        request=inline_serializer(
            "PredictionSearch",
            {
                "model": serializers.CharField(required=False),
                "version": serializers.IntegerField(required=False),
                "since": serializers.DateTimeField(required=False),
                "until": serializers.DateTimeField(required=False),
                "outcome": serializers.CharField(required=False),
                "request_id": serializers.CharField(required=False),
                "business_key": serializers.CharField(required=False),
            },
        ),
        responses={200: OpenApiTypes.OBJECT},
    )
    def post(self, request: Request) -> Response:
        body = request.data
        if not isinstance(body, dict):
            return error_response("invalid_filter", "Send the filters as a JSON object.", 400)
        unknown = sorted(str(k) for k in body if k not in SEARCH_FILTERS)
        if unknown:
            known = ", ".join(SEARCH_FILTERS)
            return error_response("invalid_filter", f"Unknown filter {', '.join(unknown)} (known: {known}).", 400)
        wrong = [k for k, v in body.items() if v is not None and (isinstance(v, (dict, list, bool)))]
        if wrong:
            return error_response("invalid_filter", f"Bad filter: {', '.join(wrong)} must be a text or a number.", 400)
        return _prediction_page(request, self, body)


def _find(prediction_id: str) -> tuple[PredictionLog, int | None]:
    if not selectors.PREDICTION_ID.match(prediction_id):
        raise ServingError(f"{prediction_id!r} is not a prediction id.", status=404, code="not_found")
    record, row = selectors.prediction_row(prediction_id)
    if record is None:
        raise ServingError(f"There is no prediction {prediction_id}.", status=404, code="not_found")
    return record, row


find_prediction = _find  # (shared with serving.decision_api and the receipt)


class PredictionDetailApi(APIView):
    """One logged decision: for those who may read it (serving.decisions.read_rule), as its
    explanation and receipt are."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, prediction_id: str) -> Response:
        try:
            record, row = _find(prediction_id)
            decisions.require_read(record, actor=request.user, api_key=caller_of(request).api_key)
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
            {"row": o.row, "seq": o.seq, "actual": o.actual, "received_at": o.received_at, "reason": o.justification}
            for o in record.actuals.order_by("row", "seq")
        ]
        return Response(data)


class PredictionOutcomeApi(APIView):
    """Ground truth arriving later, for one predicted row."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        request=inline_serializer(
            "Outcome",
            {
                "actual": serializers.JSONField(),
                "sensitive": serializers.DictField(required=False),
                "corrects": serializers.BooleanField(required=False),
                "justification": serializers.CharField(required=False),
            },
        ),
        responses={201: OpenApiTypes.OBJECT},
    )
    def post(self, request: Request, prediction_id: str) -> Response:
        caller = caller_of(request)
        try:
            record, row = _find(prediction_id)
            rule = may_report_outcome(record, actor=request.user, api_key=caller.api_key)
            if not rule:
                raise refusal(rule)
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
                api_key=caller.api_key,
                sensitive=body.get("sensitive"),
                corrects=body.get("corrects") is True,
                justification=str(body.get("justification") or ""),
            )
        except ServingError as exc:
            return serving_error(exc)
        except ValueError as exc:
            return error_response("malformed_json", f"The body is not valid JSON: {exc}", 400)
        return Response(
            {"prediction_id": prediction_id, "actual": outcome.actual, "correction": outcome.seq}, status=201
        )


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
