"""Checking request rows against a version's input schema (pure: no database)."""

from __future__ import annotations

import math
import operator
import sys
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings

from serving.errors import ServingError

MAX_REPORTED_ERRORS = 50
# What each engine can hold: the skops engine casts int64 columns with pandas (10**40 raised),
# ONNX Runtime took them as floats (10**40 was answered). Both refuse alike, here.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FLOAT64_MAX = sys.float_info.max

# Open Inference Protocol v2 datatypes: what each schema dtype is declared as, and accepts.
DATATYPES = {"float64": "FP64", "int64": "INT64", "bool": "BOOL", "string": "BYTES"}
ACCEPTED = {
    "float64": {"FP64", "FP32", "INT64", "INT32"},
    "int64": {"INT64", "INT32"},
    "bool": {"BOOL"},
    "string": {"BYTES"},
}


def _value_error(value: Any, column: dict[str, str]) -> str | None:
    problem = _type_error(value, column["dtype"])
    if problem is None and column["dtype"] == "string" and len(value) > (cap := text_cap(column)):
        return f"is longer than {cap} characters"
    return problem


def _type_error(value: Any, dtype: str) -> str | None:
    if value is None:
        return "is null; a value is required"
    if dtype == "int64":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be an integer, got {type(value).__name__}"
        if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
            return "must be an integer, got a number with a fraction or an infinite one"
        if not INT64_MIN <= value <= INT64_MAX:
            return "is outside the 64-bit integer range"
        return None
    if dtype == "float64":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number, got {type(value).__name__}"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number (NaN and infinity are not allowed)"
        if isinstance(value, int) and not -FLOAT64_MAX <= value <= FLOAT64_MAX:
            return "is beyond the largest 64-bit float"
        return None
    if dtype == "bool":
        return None if isinstance(value, bool) else f"must be true or false, got {type(value).__name__}"
    return None if isinstance(value, str) else f"must be a string, got {type(value).__name__}"


_EXACT_TYPES = {"string": {str}, "int64": {int}, "bool": {bool}}
# A field whose categories are known takes texts up to its longest category, but never fewer
# than this many characters (an unseen category is answered: the model decides what it means).
MIN_CATEGORY_CAP = 32


def text_cap(column: dict[str, Any]) -> int:
    """The longest text a string field takes: SERVING_MAX_TEXT_CHARS, or less when the schema
    names the field's categories (or its max_length). Every answered row is logged whole, and
    the log cannot be purged: this is what bounds a row (docs/operations-limits.md)."""
    cap = settings.SERVING_MAX_TEXT_CHARS
    if isinstance(column.get("max_length"), int):
        return min(cap, column["max_length"])
    categories = column.get("categories")
    if isinstance(categories, list) and categories:
        return min(cap, max(MIN_CATEGORY_CAP, *(len(str(c)) for c in categories)))
    return cap


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
            if dtype == "string" and max(map(len, values)) > text_cap(column):
                return False
            if dtype == "int64" and not (min(values) >= INT64_MIN and max(values) <= INT64_MAX):
                return False
        elif not types <= {int, float}:
            return False
        elif types == {int}:
            if not (min(values) >= -FLOAT64_MAX and max(values) <= FLOAT64_MAX):
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
                problem = _value_error(row[column["name"]], column)
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


def _flatten(data: Any) -> list[Any] | None:
    """A tensor's data in row-major order: flat, or as nested as its shape ([N, 1]: one list of
    lists). None when nested deeper: recursing into data nested 900 deep exhausted the stack (a 500)."""
    values = data if isinstance(data, list) else [data]
    if values and all(isinstance(v, list) for v in values):
        values = [x for v in values for x in v]
    return None if values and all(isinstance(v, list) for v in values) else values


def tensors_to_rows(inputs: Any, schema: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Open Inference Protocol v2 input tensors, one per feature column, shape [N] or [N, 1];
    rows out."""
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
        if values is None:
            problems.append(f"{name}: data nested deeper than shape {shape}")
            continue
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
