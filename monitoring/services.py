"""Monitoring after go-live: fold sealed prediction records into hourly bin counts, compute
windows (drift, live performance, live fairness) against the reference profile the approval
bound, store them with their audit event, and turn breaches into alerts and findings.

Why hourly counts: a window (or a year) then reads aggregates, so its cost grows with the number
of hours, not of predictions. KS needs the values themselves: it reads at most
MONITOR_KS_MAX_ROWS rows of a window (whole records, every k-th record in time order when there
are more), and says how many it used."""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pandas as pd
from django.conf import settings
from django.db import IntegrityError, connection, connections, transaction
from django.db.models import F, Q, QuerySet, Sum
from django.utils import timezone

from core import audit
from core.canonical import sha256_json
from core.evidence import evidence
from core.periods import span_label
from governance import fairness, findings, profile
from governance.models import CheckKind, CheckRun, Severity
from governance.policies import active_policy
from lifecycle.dataset_store import open_dataset
from lifecycle.models import Dataset, ModelVersion, Status
from monitoring import drift
from monitoring.models import FoldedSeal, HourlyCounts, Level, MonitoringWindow
from serving import personal
from serving.models import LogSource, Outcome, PredictionLog, PredictionOutcome, PredictionSeal

HOUR = timedelta(hours=1)
logger = logging.getLogger(__name__)
MONITORED_STATUSES = (Status.APPROVED, Status.PRODUCTION, Status.SUSPENDED, Status.RETIRED)


# --- the reference profile -------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    version_id: int
    profile: dict[str, Any]
    sha256: str
    schema: dict[str, str]
    task: str
    classes: list[Any]


_references: dict[tuple[int, int, int, str], Reference] = {}


def reference_of(version: ModelVersion) -> Reference | None:
    """The profile of the version's current review round (the one its approval bound). Kept by
    the process per finished check run (a fold and the window after it read it once): reading
    it parses up to 50,000 values per feature and hashes them."""
    found = (
        CheckRun.objects.filter(version=version, round=version.review_round, kind=CheckKind.PROFILE)
        .values_list("pk", "finished_at")
        .first()
    )
    if found is None or found[1] is None:
        return None
    key = (version.pk, version.review_round, found[0], found[1].isoformat())
    if key in _references:
        return _references[key]
    metrics = CheckRun.objects.values_list("metrics", flat=True).get(pk=found[0])
    if "profile" not in metrics:
        return None
    built = metrics["profile"]
    reference = Reference(
        version.pk,
        built,
        sha256_json(built),
        {c["name"]: c["dtype"] for c in version.input_schema},
        version.task,
        list(version.classes or []),
    )
    if len(_references) >= 32:
        _references.clear()
    _references[key] = reference
    return reference


def forget_references() -> None:
    _references.clear()


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


def _add_counts(total: dict[str, list[int]], more: dict[str, list[int]]) -> None:
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


def _answered(records: QuerySet[PredictionLog]) -> QuerySet[PredictionLog]:
    """Answers given to someone: a shadow replay's outputs are nobody's traffic."""
    return records.filter(outcome=Outcome.OK, version__isnull=False).exclude(source=LogSource.SHADOW)


# --- folding sealed records into hourly counts -------------------------------------------
def accumulate_sealed(*, max_seals: int | None = None) -> int:
    """Fold every sealed record not folded yet into the hourly counts; returns the rows folded."""
    pending = PredictionSeal.objects.exclude(pk__in=FoldedSeal.objects.values("seal_id")).order_by("pk")
    if max_seals:
        pending = pending[:max_seals]
    return sum(fold_seal(seal_id) for seal_id in list(pending.values_list("pk", flat=True)))


def fold_seal(seal_id: int) -> int:
    """Add one seal's answered rows to the hourly counts, exactly once (the FoldedSeal row and the
    counts commit together; a second worker folding the same seal fails on its unique key).

    A large seal on PostgreSQL is counted by MONITOR_FOLD_PROCESSES forked processes, each over
    its share of the records (parsing the rows is the cost, and it is per row); the counts come
    back to this process, which commits them. Counting is exact either way: the parts partition
    the records and counts add up."""
    references = {
        version_id: reference_of(ModelVersion.objects.get(pk=version_id))
        for version_id in _answered(PredictionLog.objects.filter(seal_id=seal_id))
        .order_by()
        .values_list("version_id", flat=True)
        .distinct()
    }
    parts = _fold_parts(seal_id)
    if parts > 1:
        n_records, counted = _count_in_processes(seal_id, references, parts)
    else:
        n_records, counted = _count_part(seal_id, references, 0, 1)
    try:
        with transaction.atomic():
            FoldedSeal.objects.create(seal_id=seal_id, records=n_records, rows=sum(n for n, _ in counted.values()))
            for (version_id, hour), (n, counts) in counted.items():
                reference = references[version_id]
                assert reference is not None
                bucket, _ = HourlyCounts.objects.select_for_update().get_or_create(
                    version_id=version_id, hour=hour, defaults={"profile_sha256": reference.sha256}
                )
                total = dict(bucket.counts)
                _add_counts(total, counts)
                bucket.counts, bucket.rows = total, bucket.rows + n
                bucket.save(update_fields=["counts", "rows"])
    except IntegrityError:  # another worker folded it first
        return 0
    return sum(n for n, _ in counted.values())


Counted = dict[tuple[int, datetime], tuple[int, dict[str, list[int]]]]


def _count_part(seal_id: int, references: dict[int, Reference | None], part: int, parts: int) -> tuple[int, Counted]:
    """Bin counts per (version, hour) of the seal's answered records whose id is `part` modulo
    `parts`, and the number of records read."""
    groups: dict[tuple[int, datetime], Rows] = {}
    records = _answered(PredictionLog.objects.filter(seal_id=seal_id))
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


def _fold_parts(seal_id: int) -> int:
    """How many processes count this seal: one unless the database is a server other processes
    can read (not SQLite, not inside a transaction they could not see) and the seal is large."""
    processes = max(1, settings.MONITOR_FOLD_PROCESSES)
    if processes == 1 or connection.vendor == "sqlite" or connection.in_atomic_block:
        return 1
    rows = PredictionLog.objects.filter(seal_id=seal_id).aggregate(rows=Sum("n_rows"))["rows"] or 0
    return min(processes, max(1, rows // settings.MONITOR_FOLD_ROWS_PER_PROCESS))


def _count_in_processes(seal_id: int, references: dict[int, Reference | None], parts: int) -> tuple[int, Counted]:
    """_count_part in `parts` forked processes (billiard's: a Celery prefork worker is a daemon
    process, which the standard library refuses to give children). Each child opens its own
    database connection; this process's is closed first so that no socket is shared."""
    import billiard

    context = billiard.get_context("fork")
    connections.close_all()
    children = []
    for part in range(parts):
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(target=_count_child, args=(sender, seal_id, references, part, parts), daemon=True)
        child.start()
        sender.close()
        children.append((child, receiver))
    n_records, counted = 0, Counted()
    try:
        for child, receiver in children:
            try:
                ok, result = receiver.recv()
            except EOFError:
                raise RuntimeError(f"a fold process of seal {seal_id} died (exit code {child.exitcode})") from None
            if not ok:
                raise RuntimeError(f"a fold process of seal {seal_id} failed: {result}")
            n_records += result[0]
            for key, (n, counts) in result[1].items():
                before_n, before = counted.get(key, (0, {}))
                _add_counts(before, counts)
                counted[key] = (before_n + n, before)
    finally:
        for child, receiver in children:
            receiver.close()
            child.join(timeout=5)
    logger.info("monitoring: seal %s folded by %s processes (%s records)", seal_id, parts, n_records)
    return n_records, counted


def _count_child(sender: Any, seal_id: int, references: dict[int, Reference | None], part: int, parts: int) -> None:
    try:
        result = _count_part(seal_id, references, part, parts)
        sender.send((True, result))
    except Exception as exc:  # sent to the parent, which raises it with the seal named
        sender.send((False, f"{type(exc).__name__}: {exc}"))
    finally:
        connections.close_all()
        sender.close()


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
            _add_counts(total, bucket.counts)
            rows += bucket.rows
    in_window = _answered(
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
        _add_counts(total, counts_of(extra, reference))
        rows += extra.n
    return rows, total


def _reference_values(version: ModelVersion) -> pd.DataFrame:
    dataset: Dataset = version.evaluation_dataset
    with open_dataset(dataset) as handle:
        return pd.read_csv(handle, skipinitialspace=True)


def _reference_sample(
    version: ModelVersion, name: str, entry: dict[str, Any], cache: dict[str, pd.DataFrame]
) -> np.ndarray:
    """The reference values KS compares with: kept with the profile; for profiles made before
    that, read once from the evaluation data."""
    if "values" in entry:
        return np.asarray(entry["values"], dtype=float)
    if "evaluation" not in cache:
        cache["evaluation"] = _reference_values(version)
    evaluation = cache["evaluation"]
    return profile.numeric_values(evaluation[name].tolist()) if name in evaluation else np.array([])


def ks_sample(reference: Reference, start: datetime, end: datetime) -> Rows:
    """The window's rows KS is computed over: all of them up to MONITOR_KS_MAX_ROWS, else every
    k-th record in time order (whole records, so each row is taken with its neighbours)."""
    cap = settings.MONITOR_KS_MAX_ROWS
    records = _answered(
        PredictionLog.objects.filter(version_id=reference.version_id, created_at__gte=start, created_at__lt=end)
    ).order_by("created_at", "pk")
    sizes = list(records.values_list("pk", "n_rows"))
    total = sum(n for _, n in sizes)
    step = max(1, math.ceil(total / cap)) if cap else 1
    chosen = [pk for i, (pk, _) in enumerate(sizes) if i % step == 0]
    rows = Rows()
    for start_at in range(0, len(chosen), 2000):
        part = PredictionLog.objects.filter(pk__in=chosen[start_at : start_at + 2000]).order_by("created_at", "pk")
        for inputs_json, outputs_json, public_id in part.values_list("inputs_json", "outputs_json", "public_id"):
            rows.add(inputs_of(public_id, inputs_json), orjson.loads(outputs_json), reference)
    return rows


def drift_between(
    version: ModelVersion, reference: Reference, start: datetime, end: datetime, thresholds: drift.Thresholds
) -> tuple[int, dict[str, Any], dict[str, Any], int]:
    """(rows, drift per input feature, drift of the prediction, rows KS used)."""
    rows, counts = window_counts(reference, start, end)
    sample = ks_sample(reference, start, end) if rows else Rows()
    cache: dict[str, pd.DataFrame] = {}
    result: dict[str, Any] = {}
    for name, entry in reference.profile["features"].items():
        current = counts.get(name, [0] * len(entry["counts"]))
        value = drift.psi(entry["counts"], current) if rows else None
        item: dict[str, Any] = {
            "kind": entry["kind"],
            "psi": value,
            "reference_counts": entry["counts"],
            "counts": current,
        }
        tested = shift = None
        if entry["kind"] == "numeric" and rows:
            ref_values = _reference_sample(version, name, entry, cache)
            values = sample.predictions if name == profile.PREDICTION else sample.columns.get(name, [])
            tested = drift.ks(ref_values, profile.numeric_values(values)) if ref_values.size else None
            item["ks_statistic"], item["ks_pvalue"] = tested if tested else (None, None)
        elif rows:
            shift = drift.category_shift(entry["counts"], current)
            item["category_shift"], item["chi2_pvalue"] = shift if shift else (None, None)
        item["level"] = drift.level_of(value, rows, thresholds, ks=tested, category=shift)
        result[name] = item
    prediction = result.pop(profile.PREDICTION, {})
    return rows, result, prediction, sample.n


def latest_outcomes(rows: Any) -> list[tuple[Any, ...]]:
    """Of (record_id, ..., row, ..., seq) tuples, the latest correction of each predicted row
    (without its seq): a corrected outcome counts once, as corrected."""
    latest: dict[tuple[Any, Any], tuple[Any, ...]] = {}
    for item in rows:
        key = (item[0], item[2])
        if key not in latest or item[-1] > latest[key][-1]:
            latest[key] = tuple(item)
    return [item[:-1] for item in latest.values()]


def outcome_rows(version: ModelVersion, start: datetime, end: datetime) -> pd.DataFrame:
    """One row per reported outcome of the window's predictions: actual, predicted, score, the
    sensitive attributes (inputs, or sent with the outcome)."""
    outcomes = latest_outcomes(
        PredictionOutcome.objects.filter(
            record__version=version, record__created_at__gte=start, record__created_at__lt=end
        ).values_list("record_id", "record__public_id", "row", "actual", "sensitive", "seq")
    )
    by_record: dict[int, list[tuple[int, Any, dict]]] = defaultdict(list)
    for record_id, public_id, row, actual, sensitive in outcomes:
        by_record[record_id].append((row, actual, personal.open_attributes(public_id, row, sensitive)))
    reference = Reference(version.pk, {}, "", {}, version.task, list(version.classes or []))
    items = []
    wanted = set(version.sensitive_features)
    for record_id, inputs_json, outputs_json, public_id in PredictionLog.objects.filter(
        pk__in=list(by_record)
    ).values_list("pk", "inputs_json", "outputs_json", "public_id"):
        inputs, outputs = inputs_of(public_id, inputs_json), orjson.loads(outputs_json)
        labels = outputs.get("predictions") or []
        probabilities = outputs.get("probabilities")
        scores = prediction_of(outputs, reference, len(labels)) if probabilities is not None else None
        for row, actual, sensitive in by_record[record_id]:
            if row >= len(labels):
                continue
            item = {"actual": actual, "predicted": labels[row], "score": scores[row] if scores else None}
            source = inputs[row] if row < len(inputs) and isinstance(inputs[row], dict) else {}
            for name in wanted:
                item[name] = sensitive.get(name, source.get(name))
            items.append(item)
    return pd.DataFrame(items, columns=["actual", "predicted", "score", *sorted(wanted)])


def live_performance(version: ModelVersion, frame: pd.DataFrame) -> dict[str, Any]:
    binary = version.task == "classification" and len(version.classes or []) == 2
    has_scores = binary and len(frame) and frame["score"].notna().all()
    return drift.performance(
        task=version.task,
        classes=list(version.classes or []),
        y_true=frame["actual"].tolist(),
        y_pred=frame["predicted"].tolist(),
        score=frame["score"].astype(float).tolist() if has_scores else None,
    )


def live_fairness(version: ModelVersion, frame: pd.DataFrame, policy: dict[str, Any]) -> dict[str, Any]:
    """The fairness check's headline metrics over the outcome-joined rows (groups smaller than the
    policy's minimum size are reported but not compared)."""
    if not version.sensitive_features or frame.empty:
        return {}
    kind = None if version.task == "classification" else float
    y_true = np.asarray(frame["actual"].tolist(), dtype=kind)
    y_pred = np.asarray(frame["predicted"].tolist(), dtype=kind)
    result = fairness.assess(
        frame,
        version.sensitive_features,
        y_true,
        y_pred,
        task=version.task,
        classes=list(version.classes or []),
        thresholds=fairness.Thresholds(
            max_difference=policy["max_fairness_difference"],
            min_ratio=policy["min_fairness_ratio"],
            min_group_size=policy["min_group_size"],
        ),
    )
    return result.as_dict()


@dataclass
class Result:
    """A window computed (stored or on demand)."""

    start: datetime
    end: datetime
    rows: int
    ks_rows: int
    profile_sha256: str
    drift: dict[str, Any]
    prediction_drift: dict[str, Any]
    performance: dict[str, Any]
    fairness: dict[str, Any]
    alerts: list[dict[str, Any]]

    @property
    def level(self) -> str:
        levels = {a["level"] for a in self.alerts}
        return Level.ALERT if "alert" in levels else Level.WARN if "warn" in levels else Level.OK


def compute(version: ModelVersion, start: datetime, end: datetime) -> Result | None:
    """Monitoring of `version` over [start, end) from everything logged now (None: no profile)."""
    reference = reference_of(version)
    if reference is None:
        return None
    policy = active_policy().values()
    thresholds = drift.Thresholds(
        psi_warn=float(policy["psi_warn"] or 0.10),
        psi_alert=float(policy["psi_alert"] or 0.25),
        min_rows=int(policy["monitor_min_rows"] or 0),
        max_pvalue=float(policy["drift_max_pvalue"] or 0.001),
        min_ks_statistic=float(policy["drift_min_ks_statistic"] or 0.05),
        min_category_shift=float(policy["drift_min_category_shift"] or 0.05),
    )
    rows, features, prediction, ks_rows = drift_between(version, reference, start, end, thresholds)
    frame = outcome_rows(version, start, end)
    perf = live_performance(version, frame)
    fair = live_fairness(version, frame, policy)
    alerts = _drift_alerts(features, prediction, thresholds)
    alerts += [{**b, "level": "alert", "severity": Severity.HIGH} for b in drift.performance_breaches(perf, policy)]
    alerts += _fairness_alerts(fair)
    return Result(start, end, rows, ks_rows, reference.sha256, features, prediction, perf, fair, alerts)


def _drift_alerts(features: dict[str, Any], prediction: dict[str, Any], thresholds: drift.Thresholds) -> list[dict]:
    alerts = []
    for name, item in [*features.items(), *([(profile.PREDICTION, prediction)] if prediction else [])]:
        if item["level"] == "ok":
            continue
        bound = thresholds.psi_alert if item["level"] == "alert" else thresholds.psi_warn
        alerts.append(
            {
                "kind": "drift",
                "subject": name,
                "value": item["psi"],
                "threshold": bound,
                "level": item["level"],
                "severity": Severity.MEDIUM,
                "message": f"PSI of {name} is {item['psi']:.3f} (policy: {bound}).",
            }
        )
    return alerts


def _fairness_alerts(fair: dict[str, Any]) -> list[dict]:
    alerts = []
    for feature in fair.get("features", []):
        if feature.get("violations"):
            alerts.append(
                {
                    "kind": "fairness",
                    "subject": feature["feature"],
                    "value": feature.get("headline"),
                    "threshold": None,
                    "level": "alert",
                    "severity": Severity.HIGH,
                    "message": f"Live fairness on {feature['feature']}: " + "; ".join(feature["violations"]),
                }
            )
    return alerts


@transaction.atomic
def store_window(version_id: int, *, start: datetime, end: datetime) -> MonitoringWindow | None:
    """Compute and store one window, with its audit event; each alert writes an audit event and
    opens (or joins) a finding that notifies the owner and the risk officers."""
    version = ModelVersion.objects.select_related("registered_model", "evaluation_dataset").get(pk=version_id)
    existing = MonitoringWindow.objects.filter(version=version, start=start, end=end).first()
    if existing is not None:
        return existing
    result = compute(version, start, end)
    if result is None:
        return None
    window = MonitoringWindow.objects.create(
        version=version,
        start=start,
        end=end,
        rows=result.rows,
        profile_sha256=result.profile_sha256,
        drift=_json(result.drift),
        prediction_drift=_json(result.prediction_drift),
        performance=_json({**result.performance, "ks_rows": result.ks_rows}),
        fairness=_json(result.fairness),
        alerts=_json(result.alerts),
        level=result.level,
    )
    window.refresh_from_db()
    audit.record(
        audit.MONITORING_WINDOW_COMPUTED,
        actor=None,
        target=version,
        data={
            "window": window.pk,
            "start": start,
            "end": end,
            "rows": result.rows,
            "level": window.level,
            "evidence": evidence(window),
        },
    )
    label = f"window {span_label(start, end)} UTC"
    for alert in result.alerts:
        if alert["level"] != "alert":
            continue
        finding, opened = findings.open_finding(
            version_id=version.pk,
            key=f"{alert['kind']}:{alert['subject']}",
            severity=alert["severity"],
            title=f"{alert['kind'].capitalize()} alert on {alert['subject']}",
            description=f"{alert['message']} Raised by the monitoring {label}.",
            source=f"monitoring window #{window.pk}",
            window=(start, end),
        )
        audit.record(
            audit.MONITORING_ALERT_RAISED,
            actor=None,
            target=version,
            data={"window": window.pk, **alert, "finding": finding.pk, "finding_opened": opened},
        )
    return window


def _json(value: Any) -> Any:
    """Plain JSON (numpy numbers and NaN made portable), exactly as stored and hashed."""
    return orjson.loads(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY, default=str))


def window_length() -> timedelta:
    text = str(settings.MONITOR_WINDOW).strip().lower()
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    if text and text[-1] in units:
        return timedelta(seconds=float(text[:-1]) * units[text[-1]])
    return timedelta(seconds=float(text))


def due_windows(version: ModelVersion, *, now: datetime) -> list[tuple[datetime, datetime]]:
    """The windows to store now, one after the other from the version's first answer (aligned to
    the window length from the epoch, UTC) or the end of its last window: a window closes at a
    multiple of the length once it holds the policy's row count, or at the policy's longest
    window, whichever comes first (a low-volume model's windows are longer, never missing)."""
    answered = _answered(PredictionLog.objects.filter(version=version))
    first = answered.order_by("created_at").values_list("created_at", flat=True)[:1]
    if not first:
        return []
    length = window_length()
    policy = active_policy()
    min_rows = int(policy.monitor_min_rows or 0)
    longest = max(timedelta(days=policy.monitor_max_window_days or 0), length)
    last = MonitoringWindow.objects.filter(version=version).order_by("-end").values_list("end", flat=True).first()
    epoch = datetime(1970, 1, 1, tzinfo=now.tzinfo)
    start = last or epoch + ((first[0] - epoch) // length) * length
    # rows answered per step of `length` since `start`, counted once
    counts: dict[int, int] = defaultdict(int)
    for created_at, n in answered.filter(created_at__gte=start, created_at__lt=now).values_list("created_at", "n_rows"):
        counts[(created_at - start) // length] += n
    windows = []
    step, rows, end = 0, 0, start + length
    while end <= now:
        rows += counts.get(step, 0)
        if rows >= min_rows or end - start >= longest:
            windows.append((start, end))
            start, rows = end, 0
        step += 1
        end += length
    return windows


def monitor(*, model_name: str | None = None, now: datetime | None = None) -> list[MonitoringWindow]:
    """Fold sealed records, then compute and store every window that is due (the periodic task
    and `manage.py monitor`)."""
    now = now or timezone.now()
    accumulate_sealed()
    versions = ModelVersion.objects.filter(status__in=MONITORED_STATUSES).select_related("registered_model")
    if model_name:
        versions = versions.filter(registered_model__name=model_name)
    stored = []
    for version in versions.order_by("pk"):
        for start, end in due_windows(version, now=now):
            window = store_window(version.pk, start=start, end=end)
            if window is not None:
                stored.append(window)
    return stored
