"""Monitoring after go-live: fold sealed prediction records into hourly bin counts, compute
windows (drift, live performance, live fairness) against the reference profile the approval
bound, store them with their audit event, and turn breaches into alerts and findings.

Why hourly counts: a window (or a year) then reads aggregates, so its cost grows with the number
of hours, not of predictions. KS needs the values themselves: it reads at most
MONITOR_KS_MAX_ROWS rows of a window (whole records, every k-th record in time order when there
are more), and says how many it used.

The reference profile is monitoring.reference, the counting monitoring.counts and a window's
computation monitoring.windows; this module folds, stores and schedules."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core import audit
from core.evidence import evidence
from core.periods import span_label
from governance import findings
from governance.policies import active_policy
from lifecycle.models import ModelVersion, Status
from monitoring.counts import (
    add_counts,
    answers_given,
    count_in_processes,
    count_part,
    fold_parts,
)
from monitoring.models import FoldedSeal, HourlyCounts, Level, MonitoringWindow
from monitoring.reference import reference_of
from monitoring.windows import compute
from serving.models import PredictionLog, PredictionSeal

MONITORED_STATUSES = (Status.APPROVED, Status.PRODUCTION, Status.SUSPENDED, Status.RETIRED)


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
        for version_id in answers_given(PredictionLog.objects.filter(seal_id=seal_id))
        .order_by()
        .values_list("version_id", flat=True)
        .distinct()
    }
    parts = fold_parts(seal_id)
    if parts > 1:
        n_records, counted = count_in_processes(seal_id, references, parts)
    else:
        n_records, counted = count_part(seal_id, references, 0, 1)
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
                add_counts(total, counts)
                bucket.counts, bucket.rows = total, bucket.rows + n
                bucket.save(update_fields=["counts", "rows"])
    except IntegrityError:  # another worker folded it first
        return 0
    return sum(n for n, _ in counted.values())


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
        if alert["level"] != Level.ALERT:
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
    answered = answers_given(PredictionLog.objects.filter(version=version))
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
