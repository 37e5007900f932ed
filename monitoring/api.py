"""Monitoring API: a version's monitoring over any range, and outcomes in bulk."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.canonical import ApiJSONEncoder
from core.periods import parse_moment
from core.roles import roles_of
from lifecycle.errors import Forbidden, NotFound
from lifecycle.models import ModelKind, RegisteredModel
from lifecycle.selectors import visible_versions
from monitoring import external, kpis, selectors
from serving.errors import ServingError
from serving.http import caller_of, parse_json
from serving.selectors import prediction_row
from serving.services import OutcomeItem, record_outcomes

MAX_OUTCOMES = 10_000


class VersionMonitoringApi(APIView):
    """Monitoring of one version over [since, until) (default: the last 30 days)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        parameters=[OpenApiParameter("since", str), OpenApiParameter("until", str)],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, name: str, version: int) -> Response:
        if not roles_of(request.user):
            raise Forbidden("Only data scientists, risk officers and auditors read monitoring.")
        model = RegisteredModel.objects.filter(name=name).first()
        found = visible_versions(request.user, model).filter(version=version).first() if model else None
        if found is None:
            raise NotFound(f"{name} has no version {version}.")
        since = parse_moment(request.query_params.get("since", ""), field="since")
        until = parse_moment(request.query_params.get("until", ""), field="until", end=True)
        body = selectors.monitoring_over(found, since=since, until=until)
        return Response(json.loads(json.dumps(body, cls=ApiJSONEncoder)))


def _item(index: int, raw: Any) -> OutcomeItem:
    if not isinstance(raw, dict) or "prediction_id" not in raw or "actual" not in raw:
        raise ServingError(
            f'Outcome {index} must be {{"prediction_id": "<id>.<row>", "actual": value}}.',
            status=400,
            code="invalid_input",
        )
    pid = str(raw["prediction_id"])
    record, row = prediction_row(pid)
    return OutcomeItem(pid, record, row, raw["actual"], raw.get("sensitive"))


class OutcomeBulkApi(APIView):
    """Ground truth for many predicted rows at once, all or none."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=OpenApiTypes.OBJECT, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        caller = caller_of(request)
        try:
            body = parse_json(request.body)  # depth-limited, lone surrogates refused (no 500)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ServingError(f"The body is not valid JSON: {exc}", status=400, code="malformed_json")
        items = body.get("outcomes") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise ServingError(
                'Send {"outcomes": [{"prediction_id": ..., "actual": ...}, ...]}.', status=400, code="invalid_input"
            )
        if len(items) > MAX_OUTCOMES:
            raise ServingError(f"At most {MAX_OUTCOMES} outcomes per request.", status=413, code="too_large")
        parsed = [_item(i, raw) for i, raw in enumerate(items)]
        stored = record_outcomes(parsed, api_key=caller.api_key, reporter=caller.name, actor=request.user)
        return Response({"stored": len(stored)}, status=201)


class ExternalPerformanceApi(APIView):
    """Live performance of a vendor or external model over [since, until) (default: the last 30
    days), from the decisions its clients logged and the outcomes they reported."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        parameters=[OpenApiParameter("since", str), OpenApiParameter("until", str)],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, name: str) -> Response:
        if not roles_of(request.user):
            raise Forbidden("Only data scientists, risk officers, validators and auditors read monitoring.")
        model = RegisteredModel.objects.filter(name=name).first()
        if model is None:
            raise NotFound(f"There is no model named {name!r}.")
        if model.kind == ModelKind.IN_HOUSE:
            raise ServingError(
                f"{name} is an in-house model: read its versions' monitoring (.../versions/{{v}}/monitoring).",
                status=409,
                code="model_served_here",
            )
        until = parse_moment(request.query_params.get("until", ""), field="until", end=True) or timezone.now()
        since = parse_moment(request.query_params.get("since", ""), field="since") or until - timedelta(days=30)
        body = external.external_performance(model, since=since, until=until)
        return Response(json.loads(json.dumps(body, cls=ApiJSONEncoder)))


class ModelKpisApi(APIView):
    """POST: define a KPI of the model (risk officers; 201); GET: the KPIs with their values over
    their windows ending now (or `until`)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(parameters=[OpenApiParameter("until", str)], responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, name: str) -> Response:
        if not roles_of(request.user):
            raise Forbidden("Only people with a role read KPIs.")
        model = RegisteredModel.objects.filter(name=name).first()
        if model is None:
            raise NotFound(f"There is no model named {name!r}.")
        until = parse_moment(request.query_params.get("until", ""), field="until", end=True) or timezone.now()
        values = [kpis.compute(k, since=until - timedelta(days=k.window_days), until=until) for k in model.kpis.all()]
        return Response(json.loads(json.dumps({"model": name, "kpis": values}, cls=ApiJSONEncoder)))

    @extend_schema(request=OpenApiTypes.OBJECT, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, name: str) -> Response:
        model = RegisteredModel.objects.filter(name=name).first()
        if model is None:
            raise NotFound(f"There is no model named {name!r}.")
        data = request.data if isinstance(request.data, dict) else {}
        allowed = ("name", "metric", "favourable", "min_value", "max_value", "min_rows", "window_days")
        kpi = kpis.define_kpi(model.pk, actor=request.user, **{k: data[k] for k in allowed if k in data})
        return Response({"id": kpi.pk, "name": kpi.name, "metric": kpi.metric}, status=201)
