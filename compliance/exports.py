"""Exports of the audit trail and the prediction log as CSV or JSON Lines, as generators of
encoded chunks: rows come from a server-side cursor in batches, so memory stays flat whatever
the range. CSV cells that a spreadsheet would run as a formula are neutralised."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import islice
from json import encoder as json_encoder
from typing import Any

import orjson
from django.db.models import QuerySet

from core.canonical import canonical_json
from core.models import AuditEvent
from serving import personal
from serving.fetch import stream
from serving.models import PredictionLog

CHUNK_ROWS = 2000
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")

AUDIT_COLUMNS = ("seq", "created_at", "actor", "action", "target_type", "target_id", "target", "data", "hash")
# Export column -> log field, in the order of the CSV columns.
PREDICTION_FIELDS = {
    "id": "public_id",
    "created_at": "created_at",
    "model": "model_name",
    "version": "version_number",
    "caller": "caller",
    "request_id": "request_id",
    "protocol": "protocol",
    "outcome": "outcome",
    "reason": "reason",
    "n_rows": "n_rows",
    "engine": "engine",
    "latency_ms": "latency_ms",
    "inputs": "inputs_json",
    "outputs": "outputs_json",
    "leaf_hash": "leaf_hash",
    "seal": "seal_id",
}
PREDICTION_COLUMNS = tuple(PREDICTION_FIELDS)


def looks_like_formula(text: str) -> bool:
    """Starts like a formula, also after leading whitespace (spreadsheets skip " " and U+00A0)."""
    return text.startswith(FORMULA_START) or text.lstrip().startswith(FORMULA_START)


def neutralise(value: Any) -> Any:
    """OWASP's advice for CSV injection: text starting like a formula gets a leading quote."""
    if isinstance(value, str) and looks_like_formula(value):
        return "'" + value
    return value


def _stamp(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def audit_rows(events: QuerySet[AuditEvent]) -> Iterator[dict[str, Any]]:
    fields = ("seq", "created_at", "actor_username", "action", "target_type", "target_id", "target_repr", "data")
    rows = events.order_by("seq").values_list(*fields, "hash").iterator(chunk_size=CHUNK_ROWS)
    for seq, created, actor, action, ttype, tid, trepr, data, digest in rows:
        yield {
            "seq": seq,
            "created_at": _stamp(created),
            "actor": actor,
            "action": action,
            "target_type": ttype,
            "target_id": tid,
            "target": trepr,
            "data": data,
            "hash": digest,
        }


def prediction_chunks(records: QuerySet[PredictionLog]) -> Iterator[list[tuple[Any, ...]]]:
    """The records as export rows (tuples in PREDICTION_COLUMNS order), CHUNK_ROWS at a time: ids
    and times as text, personal values decrypted or "[erased]" (serving.personal) with the
    chunk's keys read in one query (one per record made an export of personal data 200 rows/s),
    other inputs and outputs as the canonical JSON text stored."""
    rows = stream(records.order_by("pk").values_list(*PREDICTION_FIELDS.values()), CHUNK_ROWS)
    while chunk := list(islice(rows, CHUNK_ROWS)):
        sealed = {i: _loads(row[INPUTS]) for i, row in enumerate(chunk) if '"$enc"' in row[INPUTS]}
        keys = personal.read_keys_of((value, None) for value in sealed.values()) if sealed else {}
        out = []
        for i, (public_id, created, *middle, inputs, outputs, leaf, seal) in enumerate(chunk):
            record = str(public_id)
            if i in sealed:
                inputs = canonical_json(personal.reveal(record, sealed[i], keys=keys)[0])
            out.append((record, _stamp(created), *middle, inputs, outputs, leaf, seal))
        yield out


INPUTS, OUTPUTS = PREDICTION_COLUMNS.index("inputs"), PREDICTION_COLUMNS.index("outputs")
JSON_COLUMNS = {INPUTS, OUTPUTS}


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # (integers beyond 64 bits, say)
        return json.loads(text)


def prediction_rows(records: QuerySet[PredictionLog]) -> Iterator[dict[str, Any]]:
    """The records as dicts of PREDICTION_COLUMNS (inputs and outputs as RawJson)."""
    for chunk in prediction_chunks(records):
        for row in chunk:
            found = dict(zip(PREDICTION_COLUMNS, row, strict=True))
            found["inputs"], found["outputs"] = RawJson(found["inputs"]), RawJson(found["outputs"])
            yield found


def predictions_csv(records: QuerySet[PredictionLog]) -> Iterator[bytes]:
    """The records as CSV, one encoded chunk per CHUNK_ROWS rows (as_csv() of prediction_rows())."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(PREDICTION_COLUMNS)
    cell = _cell  # the one rule for a cell: formulas neutralised (looks_like_formula)
    for chunk in prediction_chunks(records):
        # the id and the time are ours (a UUID's text, an ISO time): nothing to neutralise there
        writer.writerows([(record, created, *map(cell, rest)) for record, created, *rest in chunk])
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue().encode()


def predictions_jsonl(records: QuerySet[PredictionLog]) -> Iterator[bytes]:
    """The records as JSON Lines (as_jsonl() of prediction_rows(), byte for byte): the columns in
    sorted order as _encode writes them, then the inputs and outputs spliced in as they are."""
    names = sorted(c for i, c in enumerate(PREDICTION_COLUMNS) if i not in JSON_COLUMNS)
    order = [PREDICTION_COLUMNS.index(c) for c in names]
    keys = [_encode(c) for c in names]
    for chunk in prediction_chunks(records):
        lines = []
        for row in chunk:
            head = ", ".join([f"{k}: {_value(row[i])}" for k, i in zip(keys, order, strict=True)])
            lines.append(f'{{{head},"inputs":{row[INPUTS]},"outputs":{row[OUTPUTS]}}}\n')
        yield "".join(lines).encode()


_quote = json_encoder.encode_basestring  # what _encode writes of a str


def _value(value: Any) -> str:
    """_encode(value) for a log value, without building a dict per row."""
    if type(value) is str:
        return _quote(value)
    if value is None:
        return "null"
    if type(value) is int:
        return int.__repr__(value)
    if type(value) is float and math.isfinite(value):
        return float.__repr__(value)
    return _encode(value)


class RawJson(str):
    """JSON text already canonical in the log: written verbatim, never parsed and re-dumped."""


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if looks_like_formula(value) else value
    if isinstance(value, dict | list):
        return neutralise(_encode(value))
    return value


def as_csv(rows: Iterable[dict[str, Any]], columns: tuple[str, ...]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for count, row in enumerate(rows, start=1):
        writer.writerow([_cell(row[c]) for c in columns])
        if count % 500 == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


_encode = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


def _jsonl_line(row: dict[str, Any]) -> str:
    """One JSON object per line; RawJson values are spliced in as stored, never re-encoded."""
    raw = [(k, v) for k, v in row.items() if isinstance(v, RawJson)]
    head = _encode({k: v for k, v in row.items() if not isinstance(v, RawJson)})
    if not raw:
        return head + "\n"
    return head[:-1] + "".join(f",{_encode(k)}:{v}" for k, v in raw) + "}\n"


def as_jsonl(rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    parts: list[str] = []
    for row in rows:
        parts.append(_jsonl_line(row))
        if len(parts) >= 500:
            yield "".join(parts).encode()
            parts.clear()
    yield "".join(parts).encode()
