"""Open Inference Protocol v2 (KServe / Triton HTTP), so existing clients work. Bodies are
parsed here whatever the Content-Type (common v2 clients send none); errors are
{"error": "..."}."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import connection
from django.http import HttpResponse
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lifecycle.models import SERVABLE_STATUSES, ModelVersion
from serving.errors import ServingError
from serving.predict import log_refusal, serve
from serving.selectors import get_servable_version, recent_servable_version
from serving.throttling import ApiKeyRateThrottle

DATATYPES = {"float64": "FP64", "int64": "INT64", "bool": "BOOL", "string": "BYTES"}
ACCEPTED = {
    "float64": {"FP64", "FP32", "INT64", "INT32"},
    "int64": {"INT64", "INT32"},
    "bool": {"BOOL"},
    "string": {"BYTES"},
}


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
        except Exception as exc:  # any database failure means not ready
            return Response({"ready": False, "error": f"database unavailable: {exc}"}, status=503)
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


class ModelMetadataApi(V2View):
    def get(self, request: Request, name: str, version: int | None = None) -> Response:
        try:
            found = get_servable_version(name, version)
        except ServingError as exc:
            return v2_error(exc.message, exc.status)
        return Response(_metadata(found))


class ModelReadyApi(V2View):
    def get(self, request: Request, name: str, version: int | None = None) -> Response:
        try:
            found = get_servable_version(name, version)
        except ServingError as exc:
            if exc.status == 403:
                return Response({"name": name, "ready": False}, status=403)
            return v2_error(exc.message, exc.status)
        return Response({"name": name, "version": str(found.version), "ready": True})


def _flatten(data: Any) -> list[Any]:
    if isinstance(data, list) and data and all(isinstance(d, list) for d in data):
        return [x for d in data for x in _flatten(d)]
    return data if isinstance(data, list) else [data]


def tensors_to_instances(body: dict[str, Any], schema: list[dict[str, str]]) -> list[dict[str, Any]]:
    """One input tensor per feature column, shape [N] or [N, 1]; rows out."""
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ServingError('"inputs" must be a non-empty list of tensors.', status=400, code="invalid_input")
    by_name: dict[str, dict[str, Any]] = {}
    for tensor in inputs:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise ServingError("Every input tensor needs a name.", status=400, code="invalid_input")
        by_name[tensor["name"]] = tensor
    expected = {c["name"]: c["dtype"] for c in schema}
    problems = [f"missing input tensor {n!r}" for n in expected if n not in by_name]
    problems += [f"unknown input tensor {n!r}" for n in by_name if n not in expected]
    columns: dict[str, list[Any]] = {}
    for name, tensor in by_name.items():
        if name not in expected:
            continue
        datatype, shape = tensor.get("datatype"), tensor.get("shape")
        if datatype not in ACCEPTED[expected[name]]:
            problems.append(f"{name}: datatype {datatype} where {DATATYPES[expected[name]]} is expected")
            continue
        if not isinstance(shape, list) or not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            problems.append(f"{name}: shape {shape} (use [N] or [N, 1])")
            continue
        values = _flatten(tensor.get("data"))
        if len(values) != shape[0]:
            problems.append(f"{name}: {len(values)} values for shape {shape}")
            continue
        if datatype == "BYTES":
            values = [v.decode() if isinstance(v, bytes) else v for v in values]
        if datatype in ("FP32", "FP64") and expected[name] == "float64":
            values = [float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in values]
        columns[name] = values
    if problems:
        raise ServingError("; ".join(problems), status=400, code="invalid_input")
    sizes = {len(v) for v in columns.values()}
    if len(sizes) != 1:
        raise ServingError("All input tensors must have the same number of rows.", status=400, code="invalid_input")
    n = sizes.pop()
    return [{name: columns[name][i] for name in columns} for i in range(n)]


class ModelInferApi(V2View):
    key_rechecked_at_write = True  # serving.predict re-checks the key in the log INSERT

    def post(self, request: Request, name: str, version: int | None = None) -> HttpResponse | Response:
        from serving.api import caller_of, fast_json_response, parse_json

        caller = caller_of(request)
        try:
            body = parse_json(request.body)
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object with inputs")
        except RequestDataTooBig:
            exc = ServingError("The request body is too large.", status=413, code="too_large")
            return v2_error(log_refusal(exc, caller=caller, model_name=name, request_id="", protocol="v2").message, 413)
        except (ValueError, UnicodeDecodeError) as err:
            exc = ServingError(f"The body is not valid JSON: {err}", status=400, code="malformed_json")
            logged = log_refusal(exc, caller=caller, model_name=name, request_id="", protocol="v2")
            return v2_error(logged.message, logged.status)
        request_id = str(body.get("id") or "")
        try:
            target = recent_servable_version(name, version)
            try:
                instances = tensors_to_instances(body, target.input_schema)
            except ServingError:  # refused against a remembered version: only after looking again
                target = recent_servable_version(name, version, fresh=True)
                instances = tensors_to_instances(body, target.input_schema)
        except ServingError as exc:
            logged = log_refusal(exc, caller=caller, model_name=name, request_id=request_id, protocol="v2")
            return v2_error(logged.message, logged.status)
        try:
            served = serve(
                caller=caller,
                model_name=name,
                version_number=version,
                instances=instances,
                request_id=request_id,
                protocol="v2",
            )
        except ServingError as exc:
            return v2_error(exc.message, exc.status)
        wanted = {o.get("name") for o in body.get("outputs") or [] if isinstance(o, dict)}
        outputs = []
        n = len(served.labels)
        if not wanted or "predict" in wanted:
            outputs.append(
                {
                    "name": "predict",
                    "datatype": _label_type(served.version),
                    "shape": [n],
                    "data": [str(x) if _label_type(served.version) == "BYTES" else x for x in served.labels],
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
        return fast_json_response(response)
