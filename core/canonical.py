"""Canonical JSON: the one text every hash in the system is computed over."""

from __future__ import annotations

import datetime
import decimal
import hashlib
import json
import uuid
from typing import Any


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 kept as is; anything else (dates, decimals) as its str()."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


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
