"""Open Inference Protocol v2 (KServe / Triton HTTP), so existing clients work. Bodies are
parsed here whatever the Content-Type (common v2 clients send none); errors are
{"error": "..."}."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import connection
from django.http import HttpResponse
from rest_framework import exceptions, permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lifecycle.models import SERVABLE_STATUSES, ModelVersion
from serving.errors import ServingError
from serving.http import TooDeep, caller_of, fast_json_response, parse_json
from serving.inputs import DATATYPES
from serving.keys import KeyRevoked
from serving.predict import PredictionRequest, Served, predict
from serving.selectors import get_servable_version
from serving.throttling import ApiKeyRateThrottle

logger = logging.getLogger(__name__)


def v2_error(message: str, status: int) -> Response:
    return Response({"error": message}, status=status)


class V2View(APIView):
    permission_classes = [permissions.IsAuthenticated]
    throttle_classes = [ApiKeyRateThrottle]

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        if isinstance(response.data, dict) and "error" in response.data:
            error = response.data["error"]
            response.data = {"error": error["message"] if isinstance(error, dict) else str(error)}
        return response


class HealthLiveApi(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [permissions.AllowAny]

    def get(self, request: Request) -> Response:
        return Response({"live": True})


class HealthReadyApi(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [permissions.AllowAny]

    def get(self, request: Request) -> Response:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except Exception:  # any database failure means not ready; anonymous callers learn no host or port
            logger.exception("readiness: the database is unreachable")
            return Response({"ready": False, "error": "database unavailable"}, status=503)
        return Response({"ready": True})


def _metadata(version: ModelVersion) -> dict[str, Any]:
    servable = list(
        ModelVersion.objects.filter(registered_model=version.registered_model, status__in=SERVABLE_STATUSES)
        .order_by("version")
        .values_list("version", flat=True)
    )
    outputs = [
        {
            "name": "predict",
            "datatype": "BYTES" if _label_type(version) == "BYTES" else _label_type(version),
            "shape": [-1],
        }
    ]
    if version.task == "classification":
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(version.classes)]})
    return {
        "name": version.registered_model.name,
        "versions": [str(v) for v in servable],
        "platform": "scikit-learn",
        "inputs": [{"name": c["name"], "datatype": DATATYPES[c["dtype"]], "shape": [-1]} for c in version.input_schema],
        "outputs": outputs,
        "parameters": {"version": str(version.version), "status": version.status, "task": version.task},
    }


def _label_type(version: ModelVersion) -> str:
    sample = version.classes[0] if version.classes else None
    if version.task == "regression":
        return "FP64"
    if isinstance(sample, bool):
        return "BOOL"
    if isinstance(sample, int):
        return "INT64"
    if isinstance(sample, float):
        return "FP64"
    return "BYTES"


NO_ROLE = "Your account has no role that may request predictions."


def _may_read(request: Request) -> bool:
    """v1's rule (serving.predict.Caller.may_predict): a client key, or a person with a role. The
    metadata names the input schema: whoever may not predict does not read it either."""
    return caller_of(request).may_predict


class ModelMetadataApi(V2View):
    def get(self, request: Request, name: str, version: int | None = None) -> Response:
        if not _may_read(request):
            return v2_error(NO_ROLE, 403)
        try:
            found = get_servable_version(name, version)
        except ServingError as exc:
            return v2_error(exc.message, exc.status)
        return Response(_metadata(found))


class ModelReadyApi(V2View):
    def get(self, request: Request, name: str, version: int | None = None) -> Response:
        if not _may_read(request):
            return v2_error(NO_ROLE, 403)
        try:
            found = get_servable_version(name, version)
        except ServingError as exc:
            if exc.status == 403:
                return Response({"name": name, "ready": False}, status=403)
            return v2_error(exc.message, exc.status)
        return Response({"name": name, "version": str(found.version), "ready": True})


class ModelInferApi(V2View):
    key_rechecked_at_write = True  # serving.log re-checks the key in the log INSERT

    def post(self, request: Request, name: str, version: int | None = None) -> HttpResponse | Response:
        try:
            predict_request, body = v2_request(request, name, version)
            wanted = _wanted_outputs(body)
            served = predict(predict_request)
        except KeyRevoked as exc:
            raise exceptions.AuthenticationFailed(exc.message)
        except ServingError as exc:
            return v2_error(exc.message, exc.status)
        return fast_json_response(_infer_response(served, name, wanted, str(body.get("id") or "")))


def v2_request(request: Request, name: str, version: int | None) -> tuple[PredictionRequest, dict[str, Any]]:
    """The v2 body as a PredictionRequest (tensors are turned into rows against the version that
    answers); what is wrong with the body becomes the request's problem."""
    caller = caller_of(request)
    raw: bytes | None = None  # the body as sent: a refusal logs its SHA-256 and size
    try:
        raw = request.body
        body = parse_json(raw)
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object with inputs")
    except RequestDataTooBig:  # (Django read none of it: there is nothing to digest)
        problem = ServingError("The request body is too large.", status=413, code="too_large")
        return PredictionRequest(caller, name, "v2", version_number=version, problem=problem), {}
    except TooDeep as err:
        problem = ServingError(f"The body is refused: {err}.", status=400, code="too_deep")
        return PredictionRequest(caller, name, "v2", version_number=version, problem=problem, body=raw), {}
    except (ValueError, UnicodeDecodeError) as err:
        problem = ServingError(f"The body is not valid JSON: {err}", status=400, code="malformed_json")
        return PredictionRequest(caller, name, "v2", version_number=version, problem=problem, body=raw), {}
    inputs = body.get("inputs")
    parameters = body.get("parameters")
    keys = parameters.get("business_keys") if isinstance(parameters, dict) else None
    if isinstance(keys, str):  # parameters hold scalars: a comma-separated list, as prediction_ids
        keys = keys.split(",")
    predict_request = PredictionRequest(
        caller,
        name,
        "v2",
        version_number=version,
        request_id=str(body.get("id") or ""),
        tensors=inputs,
        business_keys=keys,
        body=raw,
    )
    wrong = ""
    if not isinstance(inputs, list) or not inputs:
        wrong = '"inputs" must be a non-empty list of tensors.'
    elif "outputs" in body and not isinstance(body["outputs"], list):
        wrong = '"outputs" must be a list of {"name": ...} objects.'
    if wrong:
        predict_request.tensors = None
        predict_request.problem = ServingError(wrong, status=400, code="invalid_input")
    return predict_request, body


def _wanted_outputs(body: dict[str, Any]) -> set[Any]:
    """The output names asked for (empty: all). Anything but a list was refused as the request's problem."""
    outputs = body.get("outputs")
    return {o.get("name") for o in outputs if isinstance(o, dict)} if isinstance(outputs, list) else set()


def _infer_response(served: Served, name: str, wanted: set[Any], request_id: str) -> dict[str, Any]:
    outputs = []
    n = len(served.labels)
    label_type = _label_type(served.version)
    if not wanted or "predict" in wanted:
        outputs.append(
            {
                "name": "predict",
                "datatype": label_type,
                "shape": [n],
                "data": [str(x) for x in served.labels] if label_type == "BYTES" else served.labels,
            }
        )
    if served.probabilities is not None and (not wanted or "predict_proba" in wanted):
        width = len(served.probabilities[0]) if served.probabilities else 0
        outputs.append(
            {
                "name": "predict_proba",
                "datatype": "FP64",
                "shape": [n, width],
                "data": [p for row in served.probabilities for p in row],
            }
        )
    response: dict[str, Any] = {
        "model_name": name,
        "model_version": str(served.version.version),
        "outputs": outputs,
        "parameters": {"prediction_ids": ",".join(served.prediction_ids)},
    }
    if request_id:
        response["id"] = request_id
    return response
