"""Decisions of vendor and external models (inventory): such a model is never served
here, but the client that received its decisions logs them in the prediction log (source
"external", no version) with its own API key, so they are sealed like answers, outcomes are
reported against their prediction ids by that key (serving.services.record_outcome), and live
performance is computed from them (monitoring.external)."""

from __future__ import annotations

import time
from typing import Any

from django.db import DatabaseError

from lifecycle.models import ModelKind, RegisteredModel
from serving import log
from serving.errors import ServingError
from serving.models import Disposition, LogSource, PredictionLog
from serving.predict import Caller

MAX_ROWS = 1_000
MAX_CLASSES = 100
MAX_TEXT = 200


def _scalar(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_TEXT and "\x00" not in value
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**53) < value < 2**53  # exact in every JSON reader
    return value is None or isinstance(value, bool)


def check_body(body: Any) -> tuple[list[dict[str, Any]], list[Any], list[Any] | None, list[str] | None]:
    """(instances, decisions, classes, business keys), or ServingError 400 naming the field."""

    def bad(field: str, message: str) -> ServingError:
        return ServingError(message, status=400, code="invalid_input", details={"field": field})

    if not isinstance(body, dict):
        raise bad("body", 'Send a JSON object: {"instances": [...], "decisions": [...]}.')
    instances, decisions = body.get("instances"), body.get("decisions")
    if not isinstance(instances, list) or not instances or len(instances) > MAX_ROWS:
        raise bad("instances", f'"instances" must be a list of 1 to {MAX_ROWS} objects (the inputs the model saw).')
    for i, row in enumerate(instances):
        if not isinstance(row, dict) or len(row) > 500 or not all(_scalar(v) for v in row.values()):
            raise bad("instances", f"instances[{i}] must be an object of feature names to texts, numbers or null.")
    if not isinstance(decisions, list) or len(decisions) != len(instances):
        raise bad("decisions", '"decisions" must be a list with one decision per instance.')
    if not all(_scalar(d) and d is not None for d in decisions):
        raise bad("decisions", "Each decision must be a text, a number or a boolean.")
    classes = body.get("classes")
    if classes is not None:
        if not isinstance(classes, list) or not 2 <= len(classes) <= MAX_CLASSES or not all(map(_scalar, classes)):
            raise bad("classes", f'"classes" must list the 2 to {MAX_CLASSES} decisions the model can give.')
        unknown = [d for d in decisions if not any(type(d) is type(c) and d == c for c in classes)]
        if unknown:
            raise bad("decisions", f"Decision {unknown[0]!r} is not one of the classes.")
    keys = body.get("business_keys")
    if keys is not None and (
        not isinstance(keys, list)
        or len(keys) != len(instances)
        or not all(isinstance(k, str) and 0 < len(k) <= MAX_TEXT for k in keys)
    ):
        raise bad("business_keys", '"business_keys" must be one non-empty text per instance.')
    return instances, decisions, classes, keys


def record_external_decisions(*, model_name: str, caller: Caller, body: Any) -> PredictionLog:
    """Log a vendor or external model's decisions as one record; its prediction ids are
    "<id>.<row>" as for an answer. Refused (403) for an in-house model, whose decisions are its
    answers."""
    started = time.perf_counter()
    model = RegisteredModel.objects.filter(name=model_name).first()
    if model is None:
        raise ServingError(f"There is no model named {model_name!r}.", status=404, code="not_found")
    if not caller.may_predict:
        raise ServingError("Your account has no role that may log decisions.", status=403, code="forbidden")
    if model.kind == ModelKind.IN_HOUSE:
        raise ServingError(
            f"{model_name} is an in-house model: its decisions are the answers it gives through the serving API.",
            status=409,
            code="model_served_here",
        )
    instances, decisions, classes, keys = check_body(body)
    outputs: dict[str, Any] = {"predictions": decisions}
    if classes is not None:
        outputs["classes"] = classes
    try:
        record = log.write(
            log.Entry(
                model_name=model.name,
                version=None,
                api_key=caller.api_key,
                user=caller.user,
                caller=caller.name,
                request_id=str(body.get("request_id") or ""),
                protocol="v1",
                outcome=Disposition.OK,
                started=started,
                inputs=instances,
                outputs=outputs,
                business_keys=keys,
                source=LogSource.EXTERNAL,
            )
        )
    except DatabaseError:
        raise ServingError("The decisions could not be logged; try again.", status=503, code="log_unavailable")
    assert record is not None  # (no guard: nothing to re-check for a model served elsewhere)
    return PredictionLog.objects.get(public_id=record.public_id)  # as stored (written by raw SQL)
