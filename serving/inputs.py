"""Checking request rows against a version's input schema (pure: no database)."""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np
import pandas as pd

from serving.errors import ServingError

MAX_REPORTED_ERRORS = 50


def _type_error(value: Any, dtype: str) -> str | None:
    if value is None:
        return "is null; a value is required"
    if dtype == "int64":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be an integer, got {type(value).__name__}"
        if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
            return f"must be an integer, got {value!r}"
        return None
    if dtype == "float64":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number, got {type(value).__name__}"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number (NaN and infinity are not allowed)"
        return None
    if dtype == "bool":
        return None if isinstance(value, bool) else f"must be true or false, got {type(value).__name__}"
    return None if isinstance(value, str) else f"must be a string, got {type(value).__name__}"


_EXACT_TYPES = {"string": {str}, "int64": {int}, "bool": {bool}}


def _fast_ok(instances: list[Any], schema: list[dict[str, str]]) -> bool:
    """The common case, column by column with C-level passes (map, set, numpy): a 1,000-row batch
    is checked in a fraction of a millisecond. Anything unusual goes to the slow path, which
    names each bad field and row."""
    names = {c["name"] for c in schema}
    if set(map(type, instances)) != {dict}:
        return False
    if set(map(len, instances)) != {len(names)}:
        return False
    for column in schema:
        try:  # every row has every name and no more names than the schema: exactly the schema's
            values = list(map(operator.itemgetter(column["name"]), instances))
        except KeyError:
            return False
        types = set(map(type, values))
        dtype = column["dtype"]
        if dtype in _EXACT_TYPES:
            if types != _EXACT_TYPES[dtype]:
                return False
        elif not types <= {int, float}:
            return False
        elif float in types:
            try:
                finite = bool(np.isfinite(np.array(values, dtype=np.float64)).all())
            except (OverflowError, ValueError, TypeError):
                return False
            if not finite:
                return False
    return True


def check_rows(instances: Any, schema: list[dict[str, str]], *, max_rows: int) -> list[dict[str, Any]]:
    """Validate `instances` (a list of objects); raise ServingError naming each bad field and row."""
    if not isinstance(instances, list) or not instances:
        raise ServingError('"instances" must be a non-empty list of objects.', status=400, code="invalid_input")
    if len(instances) > max_rows:
        raise ServingError(
            f"{len(instances)} rows sent; at most {max_rows} per request.", status=413, code="too_many_rows"
        )
    if _fast_ok(instances, schema):
        return instances
    expected = {c["name"] for c in schema}
    errors: list[dict[str, Any]] = []
    for i, row in enumerate(instances):
        if len(errors) >= MAX_REPORTED_ERRORS:
            break
        if not isinstance(row, dict):
            errors.append({"row": i, "field": None, "error": "must be an object of feature: value"})
            continue
        for name in sorted(expected - row.keys()):
            errors.append({"row": i, "field": name, "error": "is missing"})
        for name in sorted(row.keys() - expected):
            errors.append({"row": i, "field": name, "error": "is not an input of this model"})
        for column in schema:
            if column["name"] in row:
                problem = _type_error(row[column["name"]], column["dtype"])
                if problem:
                    errors.append({"row": i, "field": column["name"], "error": problem})
    if errors:
        summary = "; ".join(f"row {e['row']}: {e['field']} {e['error']}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ServingError(
            f"Input does not match the model's schema: {summary}{more}",
            status=400,
            code="invalid_input",
            details=errors,
        )
    return instances


def to_frame(instances: list[dict[str, Any]], schema: list[dict[str, str]]) -> pd.DataFrame:
    """The pandas frame a scikit-learn pipeline expects, with the schema's dtypes."""
    frame = pd.DataFrame.from_records(instances, columns=[c["name"] for c in schema])
    for column in schema:
        if column["dtype"] == "float64":
            frame[column["name"]] = frame[column["name"]].astype("float64")
        elif column["dtype"] == "int64":
            frame[column["name"]] = frame[column["name"]].astype("int64")
    return frame


def to_tensors(instances: list[dict[str, Any]], schema: list[dict[str, str]]) -> dict[str, np.ndarray]:
    """ONNX inputs straight from the rows: one [N, 1] array per column, no pandas."""
    out = {}
    for column in schema:
        name = column["name"]
        values = [row[name] for row in instances]
        dtype = object if column["dtype"] == "string" else np.float64
        out[name] = np.array(values, dtype=dtype).reshape(-1, 1)
    return out
