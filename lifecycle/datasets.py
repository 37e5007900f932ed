"""Parsing uploaded CSV datasets (bytes in, frame and facts out; no database)."""

from __future__ import annotations

import csv
import io
import warnings
from collections import Counter
from dataclasses import dataclass

import pandas as pd
from django.conf import settings
from django.utils.text import slugify

from lifecycle.artifacts import sha256_of
from lifecycle.errors import LifecycleError, TooLarge


@dataclass
class ParsedDataset:
    frame: pd.DataFrame
    sha256: str
    size: int
    columns: list[dict[str, str]]
    raw: bytes

    @property
    def column_names(self) -> list[str]:
        return [c["name"] for c in self.columns]


def dtype_name(dtype: object) -> str:
    kind = getattr(dtype, "kind", "O")
    return {"i": "int64", "u": "int64", "f": "float64", "b": "bool"}.get(kind, "string")


def dataset_name_from_filename(filename: str) -> str:
    stem = filename.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return (slugify(stem)[:100].strip("-") or "dataset").lower()


def parse_csv(data: bytes, *, field: str) -> ParsedDataset:
    """Parse a CSV upload. Raises LifecycleError naming `field` when it is not a usable table."""
    limit = settings.MAX_DATASET_BYTES
    if len(data) > limit:
        raise TooLarge(f"The file is {len(data)} bytes; the limit is {limit} bytes.", field=field)
    if not data.strip():
        raise LifecycleError("The file is empty.", field=field)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LifecycleError(f"The file is not UTF-8 text (byte {exc.start}); upload a CSV file.", field=field)
    if "\x00" in text:
        raise LifecycleError("The file holds a NUL character; upload a plain-text CSV file.", field=field)
    header = next(csv.reader(io.StringIO(text)), [])
    names = [h.strip() for h in header]
    if not names or any(not n for n in names):
        raise LifecycleError("The CSV header has an empty column name.", field=field)
    if len(names) > settings.MAX_DATASET_COLUMNS:
        raise LifecycleError(
            f"The CSV has {len(names)} columns; at most {settings.MAX_DATASET_COLUMNS} are accepted.",
            field=field,
            code="too_many_columns",
        )
    # (counted once: names.count() per name was quadratic, 30 s for a 60,000-column header)
    duplicates = sorted(n for n, times in Counter(names).items() if times > 1)
    if duplicates:
        raise LifecycleError(f"The CSV header repeats column(s): {', '.join(duplicates)}.", field=field)
    try:
        # index_col=False: rows wider than the header must not silently become an index, which
        # would store every value under the wrong column; pandas warns instead, and that is refused.
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(io.StringIO(text), skipinitialspace=True, index_col=False)
    except pd.errors.ParserWarning:
        raise LifecycleError(
            f"Some rows have more fields than the header's {len(names)} columns; fix the file.", field=field
        )
    except (pd.errors.ParserError, ValueError) as exc:
        raise LifecycleError(f"The file is not a readable CSV table: {exc}", field=field)
    if frame.empty:
        raise LifecycleError("The CSV has a header but no rows.", field=field)
    frame.columns = names
    columns = [{"name": name, "dtype": dtype_name(frame[name].dtype)} for name in names]
    return ParsedDataset(frame=frame, sha256=sha256_of(data), size=len(data), columns=columns, raw=data)


# A text column with at most this many distinct values in the training and evaluation data is a
# category: its values go into the input schema, and serving caps each text at the longest of
# them (serving.inputs.text_cap). More distinct values than this is free text, capped by
# SERVING_MAX_TEXT_CHARS alone.
MAX_SCHEMA_CATEGORIES = 200


def categories_of(name: str, *frames: pd.DataFrame) -> list[str] | None:
    """The sorted distinct texts of a string column over the frames, or None when it has more
    than MAX_SCHEMA_CATEGORIES (blanks left out)."""
    seen: set[str] = set()
    for frame in frames:
        if name not in frame.columns:
            continue
        seen.update(str(v) for v in frame[name].dropna().unique())
        if len(seen) > MAX_SCHEMA_CATEGORIES:
            return None
    return sorted(seen)
