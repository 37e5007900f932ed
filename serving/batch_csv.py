"""Reading a batch job's CSV (pure: no database). plan() scans the stored file once, at numpy
speed, for what the chunks need: the header, the row count, each chunk's byte offset, the
SHA-256, and that it is UTF-8. read_chunk() parses one chunk's byte range and checks every row
against the version's input schema the way the serving path does, naming each bad row's problem
instead of refusing the chunk."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import math
import re
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import orjson
import pandas as pd

from serving.inputs import text_cap

BLOCK = 16 * 1024 * 1024
BOM = codecs.BOM_UTF8
MAX_HEADER_BYTES = 1024 * 1024
INT64 = (-(2**63), 2**63 - 1)


class BatchInputError(ValueError):
    """The file cannot be a batch input: the message names why (never a row's values)."""


@dataclass(frozen=True)
class Plan:
    header: list[str]
    rows_total: int
    offsets: list[int]  # byte offset of each chunk's first row
    end: int  # the file's size
    sha256: str


def plan(handle: IO[bytes], *, chunk_rows: int) -> Plan:
    """One pass over the file. A newline ends a record only outside quotes: CSV doubles quotes
    inside quoted fields, so the parity of the quotes before a newline says which it is."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    position = 0
    parity = 0
    ends_seen = 0  # record ends so far (the header's is the first)
    record_ends: list[int] = []  # the header's end and the end before each chunk's first row
    last_end = -1
    cr_pending = False  # the previous block ended with a CR outside quotes: is the next byte LF?
    while True:
        block = handle.read(BLOCK)
        if not block:
            break
        if cr_pending and block[:1] != b"\n":
            raise _bare_cr(position - 1)
        digest.update(block)
        try:
            decoder.decode(block)
        except UnicodeDecodeError as exc:
            raise BatchInputError(
                f"The file is not UTF-8 text (byte {position + exc.start}): save it as CSV in UTF-8."
            ) from None
        if b"\x00" in block:
            raise BatchInputError("The file holds a NUL character: it is not a CSV text file.")
        data = np.frombuffer(block, dtype=np.uint8)
        newlines = np.flatnonzero(data == 10)
        quotes = np.flatnonzero(data == 34)
        if quotes.size:
            inside = (parity + np.searchsorted(quotes, newlines)) % 2
            ends = newlines[inside == 0]
        else:
            ends = newlines if parity == 0 else newlines[:0]
        # A CR ends a line only before a LF (CRLF): a bare one outside quotes (a file saved with
        # CR-only line endings) would make every line one record, and the csv module refuse it.
        crs = np.flatnonzero(data == 13)
        if crs.size:
            if quotes.size:
                crs = crs[(parity + np.searchsorted(quotes, crs)) % 2 == 0]
            bare = crs[crs + 1 < data.size]
            bare = bare[data[bare + 1] != 10]
            if bare.size:
                raise _bare_cr(position + int(bare[0]))
            cr_pending = bool(crs.size) and int(crs[-1]) == data.size - 1
        else:
            cr_pending = False
        parity = (parity + quotes.size) % 2
        if ends.size:
            # indices (over the whole file) of the record ends we keep: the header's (0) and
            # every chunk_rows-th after it
            indices = ends_seen + np.arange(ends.size)
            keep = (indices == 0) | ((indices % chunk_rows) == 0)
            record_ends.extend(int(position + e) for e in ends[keep])
            last_end = int(position + ends[-1])
            ends_seen += int(ends.size)
        position += len(block)
        if ends_seen == 0 and position > MAX_HEADER_BYTES:
            raise BatchInputError("The header line is longer than 1 MB: this is not a CSV of feature columns.")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise BatchInputError("The file ends in the middle of a UTF-8 character: save it as CSV in UTF-8.") from None
    if cr_pending:
        raise _bare_cr(position - 1)
    if parity:
        raise BatchInputError("A quoted field is never closed: the file is not valid CSV.")
    if position == 0:
        raise BatchInputError("The file is empty: send a CSV with a header line and at least one row.")
    trailing = position - (last_end + 1)  # bytes after the last newline: a last row without one
    rows_total = max(ends_seen - 1, 0) + (1 if trailing and ends_seen else 0)
    header_end = record_ends[0] if record_ends else position
    handle.seek(0)
    header = _header(handle.read(header_end))
    if rows_total == 0:
        raise BatchInputError("The file has a header line but no rows.")
    # record_ends[k] for k >= 1 is the end before row k * chunk_rows
    offsets = [header_end + 1] + [e + 1 for e in record_ends[1:] if e + 1 < position]
    offsets = offsets[: math.ceil(rows_total / chunk_rows)]
    return Plan(header=header, rows_total=rows_total, offsets=offsets, end=position, sha256=digest.hexdigest())


def _bare_cr(at: int) -> BatchInputError:
    return BatchInputError(
        f"The file has a carriage return (CR) not followed by a line feed at byte {at}: lines must end "
        "with LF or CRLF. Save it again as CSV (UTF-8) with Windows or Unix line endings."
    )


def _header(raw: bytes) -> list[str]:
    text = raw.decode("utf-8").removeprefix("\ufeff").rstrip("\r\n")
    try:
        names = next(csv.reader([text]), [])
    except csv.Error as exc:
        raise BatchInputError(f"The header line is not valid CSV ({exc}).") from None
    names = [n.strip() for n in names]
    if not names or not any(names):
        raise BatchInputError("The first line must name the columns.")
    seen: set[str] = set()
    for name in names:
        if not name:
            raise BatchInputError("A column in the header has no name.")
        if name in seen:
            raise BatchInputError(f"The column {name[:100]!r} appears twice in the header.")
        seen.add(name)
    return names


def schema_problem(header: list[str], schema: list[dict[str, str]]) -> str:
    """Why a file with this header cannot be scored by a version with this schema ("" if it can).
    Columns that are not inputs (a label, an id) are ignored."""
    missing = [c["name"] for c in schema if c["name"] not in header]
    if missing:
        return f"The file lacks the model's input column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}."
    return ""


@dataclass
class Chunk:
    """A parsed chunk: the rows that passed (in columns typed as the serving path types them),
    their positions in the chunk, and each bad row's problem."""

    frame: pd.DataFrame
    good: np.ndarray  # positions (within the chunk) of the frame's rows
    errors: dict[int, str] = field(default_factory=dict)
    raw_bad: list[dict[str, Any]] = field(default_factory=list)  # the bad rows as sent, for the log


def read_chunk(data: bytes, *, header: list[str], schema: list[dict[str, str]], expected_rows: int) -> Chunk:
    """Parse one chunk's bytes (no header line) into checked rows. A clean chunk is read by
    pandas' C parser with the schema's types; anything unusual in it (a value that is not its
    column's type, a row with fewer or more fields than the header, an empty value) sends the
    chunk to the careful path, which names each bad row's problem while the other rows go on."""
    fast = _fast_frame(data, header, schema, expected_rows)
    if fast is not None and not _too_long(fast, schema).any():
        return Chunk(frame=fast.reset_index(drop=True), good=np.arange(len(fast), dtype=np.int64))
    try:
        frame, ragged, originals = _careful_frame(data, header)
    except csv.Error as exc:  # (a field beyond the csv module's own limit, 128 KiB)
        raise BatchInputError(f"The chunk is not valid CSV: {exc}.") from None
    if len(frame) != expected_rows:
        raise BatchInputError(f"The chunk holds {len(frame)} rows where {expected_rows} were counted.")
    errors: dict[int, str] = {
        int(i): "has a different number of fields than the header" for i in np.flatnonzero(ragged)
    }
    columns: dict[str, Any] = {}
    for column in schema:
        name, dtype = column["name"], column["dtype"]
        bad, values = _convert(frame[name], dtype)
        for i in np.flatnonzero(bad & ~ragged):
            errors.setdefault(int(i), f"{name} {_expected(dtype)}")
        if dtype == "string":
            long = frame[name].fillna("").str.len().to_numpy() > (cap := text_cap(column))
            for i in np.flatnonzero(long & ~ragged):
                errors.setdefault(int(i), f"{name} is longer than {cap} characters")
        columns[name] = values
    good = np.array(sorted(set(range(len(frame))) - set(errors)), dtype=np.int64)
    typed = pd.DataFrame({name: values[good] for name, values in columns.items()})
    raw_bad = [_bounded(originals.get(i) or dict(frame.iloc[i].items())) for i in sorted(errors)]
    return Chunk(frame=typed, good=good, errors=errors, raw_bad=raw_bad)


_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')
_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


MAX_ID_COLUMNS = 10


def id_column_names(value: list[str] | str | None) -> list[str]:
    """The id columns as a list: given as a list, or as one comma-separated text (a form field)."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return list(dict.fromkeys(i.strip() for i in items if i.strip()))


def id_columns_problem(header: list[str], ids: list[str], result: list[str], personal: list[str]) -> str:
    """Why these columns cannot be copied into the result ("" if they can): each must be one of
    the file's columns, not a result column's name, and not a declared personal field (the
    result is stored in clear)."""
    if len(ids) > MAX_ID_COLUMNS:
        return f"At most {MAX_ID_COLUMNS} id columns are copied into the result ({len(ids)} named)."
    for name in ids:
        if name not in header:
            return f"The file has no column {name[:100]!r} (named as an id column)."
        if name in result:
            return f"The id column {name[:100]!r} has the name of a result column; rename it in the file."
        if name in personal:
            return f"{name[:100]!r} is declared personal data: it is not copied into a result stored in clear."
    return ""


def csv_field(value: Any) -> str:
    """A value as one CSV field (RFC 4180 quoting when it needs it)."""
    text = value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_fields(values: list[Any]) -> list[str]:
    """csv_field() of each value; one pass over all of them when none needs quotes."""
    if all(type(v) is int for v in values):
        return list(map(str, values))
    texts = [v if isinstance(v, str) else repr(v) if isinstance(v, float) else str(v) for v in values]
    return list(map(csv_field, texts)) if _NEEDS_QUOTES.search("".join(texts)) else texts


def number_texts(values: list[float] | list[int] | np.ndarray) -> list[str]:
    """Each number as JSON writes it, by orjson in one pass: a float as the shortest text that
    reads back the same number (the serving path's log writes its numbers with orjson too;
    Python's repr of 100,000 floats took 12% of a batch chunk), an integer (64-bit) in full.
    A float64 or int64 array is written as it is, without a Python number per value (orjson
    writes them as it writes Python's floats and ints). Non-finite floats, which JSON cannot
    hold, as repr."""
    if isinstance(values, np.ndarray) and (values.dtype not in _ORJSON_ARRAYS or values.ndim != 1):
        values = values.tolist()
    if not len(values):
        return []
    if isinstance(values, np.ndarray):
        values = np.ascontiguousarray(values)
    text = orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    if "null" in text:
        return [repr(float(v)) for v in values]
    return text[1:-1].split(",")


# the arrays orjson writes exactly as the Python numbers .tolist() would give (not float32:
# orjson writes its own shortest text, where Python's float of it has more digits)
_ORJSON_ARRAYS = (np.dtype(np.float64), np.dtype(np.int64))


def json_rows(frame: pd.DataFrame, schema: list[dict[str, str]]) -> list[str]:
    """Each row as compact JSON with sorted keys (what json_records() joins, one text a row)."""
    columns, template = _json_columns(frame, schema)
    return [template % fields for fields in zip(*columns, strict=True)]


def json_records(frame: pd.DataFrame, schema: list[dict[str, str]], per: int) -> list[str]:
    """The rows as JSON arrays of `per` rows each (the last one shorter): exactly the text
    "[" + ",".join(json_rows()) + "]" of each slice, and so the serving path's dump_json of the
    rows as dicts. One %-format per array over the fields in row order (interleave()), so no
    tuple or text is made per row (the per-row formatting took about a fifth of a chunk)."""
    columns, template = _json_columns(frame, schema)
    n, k = len(frame), len(columns)
    if not n:
        return []
    flat = interleave(columns)
    out = []
    for start in range(0, n, per):
        m = min(per, n - start)
        out.append(("[" + ",".join([template] * m) + "]") % tuple(flat[start * k : (start + m) * k]))
    return out


def interleave(columns: list[Any]) -> list[Any]:
    """The values of equal-length columns in row order (row 0's, then row 1's...), for one
    %-format over many rows: numpy moves the references, no tuple is made per row."""
    grid = np.empty((len(columns), len(columns[0]) if columns else 0), dtype=object)
    for i, column in enumerate(columns):
        if len(column) != grid.shape[1]:  # (numpy would repeat a column of one value)
            raise ValueError(f"column {i} has {len(column)} values where {grid.shape[1]} were expected")
        grid[i] = column
    return grid.T.ravel().tolist()


def _json_columns(frame: pd.DataFrame, schema: list[dict[str, str]]) -> tuple[list[list[str]], str]:
    """Each column's values as JSON texts, by sorted name, and the row template taking them
    (built column by column: several times faster than a dict per row): numbers as orjson writes
    them (number_texts), texts escaped by orjson, or put between the template's quotes when they
    need no escaping."""
    names = sorted(c["name"] for c in schema)
    dtypes = {c["name"]: c["dtype"] for c in schema}
    columns = []
    slots = []
    for name in names:
        slot = "%s"
        if dtypes[name] in ("float64", "int64"):  # (integers are 64-bit, checked when read)
            columns.append(number_texts(frame[name].to_numpy()))
        elif dtypes[name] == "bool":
            columns.append(["true" if v else "false" for v in frame[name].tolist()])
        else:
            values = frame[name].tolist()
            if _NEEDS_ESCAPE.search("".join(values)):
                columns.append([orjson.dumps(v).decode() for v in values])
            else:  # nothing to escape: the text between quotes is the JSON string
                columns.append(values)
                slot = '"%s"'
        slots.append(orjson.dumps(name).decode().replace("%", "%%") + ":" + slot)
    return columns, "{" + ",".join(slots) + "}"


_PANDAS_TYPES = {"float64": "float64", "int64": "int64", "bool": "bool", "string": "object"}


def _fast_frame(
    data: bytes, header: list[str], schema: list[dict[str, str]], expected_rows: int
) -> pd.DataFrame | None:
    """The schema's columns, typed, when every row of the chunk is clean; else None. One extra
    column catches rows wider than the header, missing values (NaN) catch shorter ones."""
    names = [*header, "__extra__"]
    dtypes = {c["name"]: _PANDAS_TYPES[c["dtype"]] for c in schema}
    try:
        frame = pd.read_csv(
            io.BytesIO(data),
            header=None,
            names=names,
            index_col=False,
            dtype={**{name: "object" for name in names}, **dtypes},
            keep_default_na=False,
            na_values={name: [""] for name in names},
            skip_blank_lines=False,
            float_precision="round_trip",  # exactly what Python's float() reads
            engine="c",
        )
    except (pd.errors.ParserError, ValueError, TypeError, OverflowError):
        return None
    if len(frame) != expected_rows or frame["__extra__"].notna().any():
        return None
    frame = frame.drop(columns="__extra__")[[c["name"] for c in schema]]
    if frame.isna().to_numpy().any():
        return None
    numeric = [c["name"] for c in schema if c["dtype"] == "float64"]
    if numeric and not np.isfinite(frame[numeric].to_numpy(dtype=np.float64)).all():
        return None
    return frame


LOGGED_TEXT_CHARS = 1024


def _bounded(value: Any) -> Any:
    """A bad row as logged: every text cut to LOGGED_TEXT_CHARS (the refusal names the field)."""
    if isinstance(value, str) and len(value) > LOGGED_TEXT_CHARS:
        return f"{value[:LOGGED_TEXT_CHARS]}... ({len(value)} characters)"
    if isinstance(value, dict):
        return {k: _bounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_bounded(v) for v in value]
    return value


def _too_long(frame: pd.DataFrame, schema: list[dict[str, str]]) -> np.ndarray:
    """Rows with a text longer than its field's cap (serving.inputs.text_cap)."""
    long = np.zeros(len(frame), dtype=bool)
    for column in schema:
        if column["dtype"] == "string":  # (a clean chunk's texts are all str: len() of each, no NaN to mind)
            values = frame[column["name"]].to_numpy(dtype=object)
            long |= np.fromiter(map(len, values), dtype=np.int64, count=len(values)) > text_cap(column)
    return long


def _careful_frame(data: bytes, header: list[str]) -> tuple[pd.DataFrame, np.ndarray, dict[int, Any]]:
    """Every field as text with the csv module, which rows have another number of fields than
    the header (their fields are blanked: nothing of a shifted row is used), and those rows'
    fields as sent, for the log."""
    records = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    width = len(header)
    ragged = np.fromiter((len(r) != width for r in records), dtype=bool, count=len(records))
    originals: dict[int, Any] = {}
    for i in np.flatnonzero(ragged):
        originals[int(i)] = {"fields": records[i]}
        records[i] = [""] * width
    frame = pd.DataFrame(records, columns=header, dtype=object) if records else pd.DataFrame(columns=header)
    return frame, ragged, originals


def _expected(dtype: str) -> str:
    return {
        "float64": "must be a finite number",
        "int64": "must be an integer (64-bit)",
        "bool": "must be true or false",
        "string": "must be text",
    }[dtype]


def _convert(text: pd.Series, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(bad mask, values as the serving path would type them)."""
    missing = text.isna().to_numpy()
    if dtype == "string":
        return missing, text.fillna("").to_numpy(dtype=object)
    if dtype == "bool":
        lowered = text.fillna("").str.strip().str.lower()
        bad = ~(lowered.isin(["true", "false"]).to_numpy())
        return bad | missing, lowered.eq("true").to_numpy()
    numbers = pd.to_numeric(text.fillna("").str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(numbers) | missing
    if dtype == "float64":
        return bad, numbers
    integral = np.zeros(len(numbers), dtype=bool)
    integral[~bad] = np.equal(np.floor(numbers[~bad]), numbers[~bad])
    bad |= ~integral
    small = ~bad & (np.abs(numbers) < 2**53)
    values = np.zeros(len(numbers), dtype=np.int64)
    values[small] = numbers[small].astype(np.int64)
    # beyond 2**53 a float has lost digits: read those few values again as exact integers
    for i in np.flatnonzero(~bad & ~small):
        try:
            exact = int(str(text.iloc[i]).strip())
        except ValueError:
            exact = int(numbers[i])
        if INT64[0] <= exact <= INT64[1]:
            values[i] = exact
        else:
            bad[i] = True
    return bad, values
