"""Counting answered rows into the reference profile's bins: a record's rows, a seal's records
counted in one or several processes, and a window's counts from the hourly counts plus the
records not folded yet."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db.models import F, Q, QuerySet, Sum

from core import child as child_process
from core import forked
from governance import profile
from monitoring.models import FoldedSeal, HourlyCounts
from monitoring.reference import Reference
from serving import personal
from serving.models import Disposition, LogSource, PredictionLog

HOUR = timedelta(hours=1)
logger = logging.getLogger(__name__)


# --- counting rows ---------------------------------------------------------------------
@dataclass
class Rows:
    """Answered rows of one version, column by column."""

    columns: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    predictions: list[Any] = field(default_factory=list)
    n: int = 0

    def add(self, inputs: list[dict[str, Any]], outputs: dict[str, Any], reference: Reference) -> None:
        for name in reference.schema:
            try:  # answered rows carry every input (serving checked them against the schema)
                self.columns[name].extend([row[name] for row in inputs])
            except (KeyError, TypeError):
                self.columns[name].extend(row.get(name) if isinstance(row, dict) else None for row in inputs)
        self.predictions.extend(prediction_of(outputs, reference, len(inputs)))
        self.n += len(inputs)


def prediction_of(outputs: dict[str, Any], reference: Reference, n: int) -> list[Any]:
    """What `__prediction__` profiles for each row of a record's outputs."""
    labels = outputs.get("predictions") or [None] * n
    probabilities = outputs.get("probabilities")
    _, values = profile.prediction_values(
        task=reference.task, classes=reference.classes, labels=labels, probabilities=probabilities
    )
    return list(values)


def counts_of(rows: Rows, reference: Reference) -> dict[str, list[int]]:
    result = {}
    for name, entry in reference.profile["features"].items():
        values = rows.predictions if name == profile.PREDICTION else rows.columns.get(name, [None] * rows.n)
        if entry["kind"] == "numeric":
            result[name] = profile.count_numeric(profile.numeric_values(values), entry["edges"])
        else:
            result[name] = profile.count_categorical(values, entry["categories"])
    return result


def add_counts(total: dict[str, list[int]], more: dict[str, list[int]]) -> None:
    for name, counts in more.items():
        if name in total and len(total[name]) == len(counts):
            total[name] = [a + b for a, b in zip(total[name], counts, strict=True)]
        else:
            total[name] = list(counts)


def inputs_of(public_id: Any, inputs_json: str) -> list[Any]:
    """A record's logged rows, personal values read through their keys (serving.personal); an
    erased value counts as missing. Monitoring keeps only aggregates of them."""
    rows = orjson.loads(inputs_json)
    if '"$enc"' not in inputs_json:
        return rows
    shown, _ = personal.reveal(public_id, rows)
    return [
        {k: (None if v == personal.ERASED else v) for k, v in row.items()} if isinstance(row, dict) else row
        for row in shown
    ]


def answers_given(records: QuerySet[PredictionLog]) -> QuerySet[PredictionLog]:
    """Answers given to someone: a shadow replay's outputs are nobody's traffic."""
    return records.filter(outcome=Disposition.OK, version__isnull=False).exclude(source=LogSource.SHADOW)


Counted = dict[tuple[int, datetime], tuple[int, dict[str, list[int]]]]


def count_part(seal_id: int, references: dict[int, Reference | None], part: int, parts: int) -> tuple[int, Counted]:
    """Bin counts per (version, hour) of the seal's answered records whose id is `part` modulo
    `parts`, and the number of records read."""
    groups: dict[tuple[int, datetime], Rows] = {}
    records = answers_given(PredictionLog.objects.filter(seal_id=seal_id))
    if parts > 1:
        records = records.annotate(part=F("pk") % parts).filter(part=part)
    n_records = 0
    for version_id, created_at, inputs_json, outputs_json, public_id in records.values_list(
        "version_id", "created_at", "inputs_json", "outputs_json", "public_id"
    ).iterator(chunk_size=2000):
        reference = references.get(version_id)
        n_records += 1
        if reference is None:
            continue
        hour = created_at.replace(minute=0, second=0, microsecond=0)
        rows = groups.setdefault((version_id, hour), Rows())
        rows.add(inputs_of(public_id, inputs_json), orjson.loads(outputs_json), reference)
    counted = {key: (rows.n, counts_of(rows, references[key[0]])) for key, rows in groups.items()}  # type: ignore[arg-type]
    return n_records, counted


def fold_parts(seal_id: int) -> int:
    """How many processes count this seal: one unless the database is a server other processes
    can read (not SQLite, not inside a transaction they could not see) and the seal is large."""
    processes = max(1, settings.MONITOR_FOLD_PROCESSES)
    if processes == 1 or not forked.others_can_read():
        return 1
    rows = PredictionLog.objects.filter(seal_id=seal_id).aggregate(rows=Sum("n_rows"))["rows"] or 0
    return min(processes, max(1, rows // settings.MONITOR_FOLD_ROWS_PER_PROCESS))


def count_in_processes(seal_id: int, references: dict[int, Reference | None], parts: int) -> tuple[int, Counted]:
    """count_part in `parts` forked processes (core.forked), each on its own connection."""
    outcomes = forked.run_forked(count_part, [(seal_id, references, part, parts) for part in range(parts)])
    n_records, counted = 0, Counted()
    for result in outcomes:
        if isinstance(result, child_process.Died):
            raise RuntimeError(f"a fold process of seal {seal_id} died (exit code {result.exitcode})")
        if isinstance(result, child_process.Failed):
            raise RuntimeError(f"a fold process of seal {seal_id} failed: {result}")
        n_records += result[0]
        for key, (n, counts) in result[1].items():
            before_n, before = counted.get(key, (0, {}))
            add_counts(before, counts)
            counted[key] = (before_n + n, before)
    logger.info("monitoring: seal %s folded by %s processes (%s records)", seal_id, parts, n_records)
    return n_records, counted


# --- windows ---------------------------------------------------------------------------
def _ceil_hour(moment: datetime) -> datetime:
    floor = moment.replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + HOUR


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def window_counts(reference: Reference, start: datetime, end: datetime) -> tuple[int, dict[str, list[int]]]:
    """Bin counts of the version's answered rows in [start, end): the hourly counts of whole
    hours folded from seals, plus, read from the log, the records of partial hours and those
    not sealed or folded yet."""
    whole_from, whole_to = _ceil_hour(start), _floor_hour(end)
    total: dict[str, list[int]] = {}
    rows = 0
    if whole_from < whole_to:
        for bucket in HourlyCounts.objects.filter(
            version_id=reference.version_id, hour__gte=whole_from, hour__lt=whole_to, profile_sha256=reference.sha256
        ):
            add_counts(total, bucket.counts)
            rows += bucket.rows
    in_window = answers_given(
        PredictionLog.objects.filter(version_id=reference.version_id, created_at__gte=start, created_at__lt=end)
    )
    folded = FoldedSeal.objects.values("seal_id")
    direct = in_window.filter(
        Q(seal__isnull=True)
        | ~Q(seal_id__in=folded)
        | Q(created_at__lt=whole_from)
        | Q(created_at__gte=max(whole_to, whole_from))
    )
    extra = Rows()
    for inputs_json, outputs_json, public_id in direct.values_list("inputs_json", "outputs_json", "public_id").iterator(
        chunk_size=2000
    ):
        extra.add(inputs_of(public_id, inputs_json), orjson.loads(outputs_json), reference)
    if extra.n:
        add_counts(total, counts_of(extra, reference))
        rows += extra.n
    return rows, total
