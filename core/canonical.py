"""Canonical JSON: the one text every hash in the system is computed over."""

from __future__ import annotations

import datetime
import decimal
import hashlib
import json
import math
import uuid
from typing import Any


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 kept as is; anything else (dates, decimals) as its str()."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical_number(value: float | int | decimal.Decimal) -> float:
    """The one form a hashed number takes, whatever Python type the writer held and whatever the
    database hands back: the IEEE-754 double it is stored as (SQLite REAL and PostgreSQL double
    precision both hold exactly that), negative zero as zero. So 0, 0.0 and -0.0 hash alike (an int
    default written, a float read back), 1e-7 keeps its shortest round-trip form, and an integer
    beyond 2**53 hashes as the double the column keeps, not as digits the row no longer holds.
    Floats already stored as floats keep the text they were always hashed with. NaN and
    infinities are refused: no JSON number, and no database reads them back alike."""
    if isinstance(value, bool) or not isinstance(value, (int, float, decimal.Decimal)):
        raise TypeError(f"not a number: {value!r}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    return number + 0.0  # -0.0 + 0.0 is 0.0


def sha256_json(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


class ApiJSONEncoder(json.JSONEncoder):
    """The types the API writes, written as DRF's JSON renderer writes them (ISO 8601 with "Z"
    for UTC, decimals as numbers, UUIDs as text), so a report can embed exactly the API's body
    without importing DRF."""

    def default(self, obj: Any) -> Any:
        if isinstance(obj, datetime.datetime):
            text = obj.isoformat()
            return text[:-6] + "Z" if text.endswith("+00:00") else text
        if isinstance(obj, (datetime.date, datetime.time)):
            return obj.isoformat()
        if isinstance(obj, datetime.timedelta):
            return str(obj.total_seconds())
        if isinstance(obj, decimal.Decimal):
            return float(obj)
        if isinstance(obj, uuid.UUID):
            return str(obj)
        if isinstance(obj, bytes):
            return obj.decode()
        if hasattr(obj, "tolist"):  # numpy arrays and scalars
            return obj.tolist()
        if hasattr(obj, "__iter__"):
            return list(obj)
        return super().default(obj)
