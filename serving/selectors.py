"""The only way serving reaches a model version: it can only return servable versions.

get_servable_version() asks the database (one precompiled statement: the ORM's query building
cost more than the prediction itself, docs/benchmarks.md). The predict path may start from what the
process resolved before (recent_servable_version), because its log INSERT re-checks the version
row in the same statement (servable_guard): a retired version stops answering in every process
as soon as the retirement commits, and no answer is logged or returned from a stale memory."""

from __future__ import annotations

import re
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from core import caches
from core.periods import in_period
from lifecycle.models import SERVABLE_STATUSES, ModelKind, ModelVersion, RegisteredModel, Status
from serving import rawsql, statements, subject_keys
from serving.errors import ServingError
from serving.models import Disposition, LogSource, PredictionKey, PredictionLog, PredictionSeal
from serving.statements import VERSION_FIELDS
from serving.writers import writer


def _version_from_row(row: tuple) -> ModelVersion:
    return rawsql.instance(ModelVersion, VERSION_FIELDS, row[: len(VERSION_FIELDS)])


_FALLBACK = "_answers_as_fallback"


def answers_as_fallback(version: ModelVersion) -> bool:
    """Whether the version was resolved as its stopped model's fallback (its answers' log INSERT
    then requires the model still stopped with this fallback, serving.log.Guard)."""
    return getattr(version, _FALLBACK, False)


def _stopped(model_name: str, rows: list[tuple]) -> ModelVersion:
    """The answer of a stopped model: its fallback if that may still answer, else 503."""
    fallback_id = rows[0][-1]
    for row in rows:
        candidate = _version_from_row(row)
        if candidate.pk == fallback_id:
            expired = candidate.approval_expires_at is not None and candidate.approval_expires_at <= timezone.now()
            if candidate.status in SERVABLE_STATUSES and not expired:
                setattr(candidate, _FALLBACK, True)
                return candidate
    raise model_stopped(model_name, fallback=fallback_id is not None)


def model_stopped(model_name: str, *, fallback: bool = False) -> ServingError:
    why = "its fallback version may not answer" if fallback else "it has no fallback version"
    return ServingError(
        f"{model_name} is stopped by risk officers and {why}: no prediction is given.",
        status=503,
        code="model_stopped",
    )


def get_servable_version(model_name: str, version: int | None = None) -> ModelVersion:
    """Production by default, or the named version if it is approved or in production.
    Unknown model or version: 404; known but not servable: 403 version_not_servable."""
    if version is not None and not 0 < version < 2**31:  # found by schemathesis: beyond any column range
        raise ServingError(f"{model_name} has no version {version}.", status=404, code="not_found")
    rows = writer().fetch(statements.servable_versions(), [model_name, version if version is not None else -1])
    if rows and rows[0][-2] is not None:
        return _stopped(model_name, rows)
    found = None
    for row in rows:
        candidate = _version_from_row(row)
        if version is None and candidate.status == Status.PRODUCTION:
            found = candidate
            break
        if version is not None and candidate.version == version:
            found = candidate
            break
    if found is None:
        registered = RegisteredModel.objects.filter(name=model_name).only("kind", "stopped_at").first()
        if registered is None:
            raise ServingError(f"There is no model named {model_name!r}.", status=404, code="not_found")
        if registered.kind != ModelKind.IN_HOUSE:
            raise ServingError(
                f"{model_name} is a {registered.get_kind_display().lower()} model: it is documented, validated and "
                "monitored here, never served (its decisions come from its provider).",
                status=403,
                code="model_not_served",
            )
        if registered.stopped_at is not None:
            raise model_stopped(model_name)
        if version is None:
            suspended = _suspended_from_production(model_name)
            if suspended is not None:
                raise _not_servable(model_name, suspended)
            raise ServingError(
                f"{model_name} has no version in production; name an approved version explicitly.",
                status=403,
                code="version_not_servable",
            )
        raise ServingError(f"{model_name} has no version {version}.", status=404, code="not_found")
    if found.status not in SERVABLE_STATUSES:
        raise _not_servable(model_name, found)
    if found.approval_expires_at is not None and found.approval_expires_at <= timezone.now():
        raise ServingError(
            f"{model_name} v{found.version}'s approval expired on {found.approval_expires_at:%Y-%m-%d %H:%M} UTC "
            "and it is not served until risk officers recertify it.",
            status=403,
            code="version_not_servable",
            details={"status": found.status, "reason": "approval_expired"},
        )
    return found


def _not_servable(model_name: str, found: ModelVersion) -> ServingError:
    """403 version_not_servable, saying why: its status, and for a suspended version the reason
    (a void approval names what changed)."""
    if found.status == Status.SUSPENDED:
        reason = ModelVersion.objects.filter(pk=found.pk).values_list("suspended_reason", flat=True).first() or ""
        return ServingError(
            f"{model_name} v{found.version} is suspended and not served. {reason}".strip(),
            status=403,
            code="version_not_servable",
            details={"status": found.status, "reason": reason},
        )
    return ServingError(
        f"{model_name} v{found.version} is {found.get_status_display().lower()}: only approved and production "
        "versions are served.",
        status=403,
        code="version_not_servable",
        details={"status": found.status},
    )


def _suspended_from_production(model_name: str) -> ModelVersion | None:
    """The version whose suspension ended the model's last deployment, if that is why the model
    has no production version now."""
    latest = (
        ModelVersion.objects.filter(registered_model__name=model_name, deployments__isnull=False)
        .order_by("-deployments__deployed_at")
        .first()
    )
    return latest if latest is not None and latest.status == Status.SUSPENDED else None


# The version each (model, requested version) resolved to in this process, for the predict path
# only. It may be stale: the log INSERT of every answer re-checks servability in the same
# statement (serving.log.write with a guard), and a failed guard forgets the entry and looks again.
_recent: dict[tuple[str, int | None], ModelVersion] = {}
_RECENT_MAX = 1024


def recent_servable_version(model_name: str, version: int | None = None, *, fresh: bool = False) -> ModelVersion:
    """get_servable_version() without the round trip when this process resolved the same request
    before. Only for callers whose write re-checks servability (serving.predict)."""
    key = (model_name, version)
    found = None if fresh else _recent.get(key)
    if found is None:
        _recent.pop(key, None)
        found = get_servable_version(model_name, version)
        if len(_recent) >= _RECENT_MAX:
            _recent.clear()
        _recent[key] = found
    return found


def forget_servable_version(model_name: str, version: int | None = None) -> None:
    _recent.pop((model_name, version), None)


def clear_recent() -> None:
    _recent.clear()


caches.register("serving.selectors.recent_versions", clear_recent)


def answering_statuses(*, named: bool) -> tuple[str, ...]:
    """The statuses a version may answer with: approved or production when the request named the
    version (or it answers as a stopped model's fallback), production only when it did not
    (serving.log.Guard checks them at the write)."""
    return tuple(s.value for s in SERVABLE_STATUSES) if named else (Status.PRODUCTION.value,)


def logged_predictions(
    *,
    model: str = "",
    version: int | None = None,
    since: Any = None,
    until: Any = None,
    outcome: str = "",
    request_id: str = "",
    business_key: str = "",
) -> QuerySet[PredictionLog]:
    """The prediction log for auditors, filtered; newest first is the paginator's job. A text
    filter holding NUL (which PostgreSQL cannot compare) is a ValueError for the interface."""
    for name, value in (
        ("model", model),
        ("outcome", outcome),
        ("request_id", request_id),
        ("business_key", business_key),
    ):
        if "\x00" in value:
            raise ValueError(f"{name}: the NUL character is not allowed")
    records = PredictionLog.objects.all()
    if model:
        records = records.filter(model_name=model)
    if version is not None:
        records = records.filter(version_number=version)
    records = in_period(records, since, until)
    if outcome:
        records = records.filter(outcome=outcome)
    if request_id:
        records = records.filter(request_id=request_id)
    if business_key:
        keys = PredictionKey.objects.filter(key__in=[business_key, *subject_keys.business_key_lookups(business_key)])
        # a key's created_at is its record's: a period reads only its months' key index
        records = records.filter(public_id__in=in_period(keys, since, until).values("record_id"))
    return records


def decisions_with_key(business_key: str) -> list[tuple[PredictionLog, int]]:
    """Every logged row the client sent with this business key, newest first, as (record, row):
    one index lookup (serving_key_lookup) per month's partition on PostgreSQL (no period is
    known, so every month's key index is read), then the records in the months found only."""
    if not business_key or "\x00" in business_key:
        return []
    wanted = [business_key, *subject_keys.business_key_lookups(business_key)]  # a personal key: by its hash
    keys = list(PredictionKey.objects.filter(key__in=wanted).values_list("record_id", "row", "created_at")[:100])
    # the records are read in their months only (a key's created_at is its record's)
    moments = {moment for _, _, moment in keys}
    records = PredictionLog.objects.filter(created_at__in=moments).in_bulk(
        [k for k, _, _ in keys], field_name="public_id"
    )
    found = [(records[k], row) for k, row, _ in keys if k in records]
    return sorted(found, key=lambda pair: (pair[0].created_at, pair[1]), reverse=True)


PERCENTILES = (0.5, 0.95, 0.99)


def _latency_percentiles(records: QuerySet[PredictionLog]) -> dict[str, float | None]:
    """p50/p95/p99 of answered requests, computed by the database (no rows come to Python)."""
    answered = records.filter(outcome=Disposition.OK)
    names = [f"p{int(p * 100)}" for p in PERCENTILES]
    values = writer().latency_percentiles(answered, PERCENTILES)
    return dict(zip(names, values, strict=True))


def serving_summary(*, version_id: int | None = None, model: str = "", since: Any = None, until: Any = None) -> dict:
    """What a version (or model) answered: per-day volumes, outcomes, latency percentiles.
    Shadow replays (a challenger answering production's traffic again) are not traffic: they are
    counted apart. Aggregated in SQL (one GROUP BY, then the latency percentiles): no record
    comes to Python."""
    logged = PredictionLog.objects.all()
    if version_id is not None:
        logged = logged.filter(version_id=version_id)
    if model:
        logged = logged.filter(model_name=model)
    logged = in_period(logged, since, until)
    records = logged.exclude(source=LogSource.SHADOW)
    # One scan: requests and rows per (day, outcome, reason, source), folded here into the totals,
    # the days and the refusal reasons (a handful of groups per day).
    groups = (
        logged.order_by()
        .annotate(day=TruncDate("created_at"))
        .values_list("day", "outcome", "reason", "source")
        .annotate(requests=Count("id"), rows=Sum("n_rows"))
        .order_by("day", "outcome", "reason", "source")
    )
    replays = {"requests": 0, "rows": 0}
    by_outcome: dict[str, dict[str, int]] = {}
    per_day: dict[Any, dict[str, Any]] = {}
    refusals: dict[tuple[str, str], int] = {}
    for day, outcome, reason, source, requests, rows in groups:
        rows = rows or 0
        if source == LogSource.SHADOW:
            replays["requests"] += requests
            replays["rows"] += rows
            continue
        totals = by_outcome.setdefault(outcome, {"requests": 0, "rows": 0})
        totals["requests"] += requests
        totals["rows"] += rows
        that_day = per_day.setdefault(day, {"day": day.isoformat(), "requests": 0, "rows": 0, "refused": 0})
        that_day["requests"] += requests
        if outcome == Disposition.OK:
            that_day["rows"] += rows
        else:
            that_day["refused"] += requests
            refusals[(outcome, reason)] = refusals.get((outcome, reason), 0) + requests
    days = [per_day[day] for day in sorted(per_day)]
    top = sorted(refusals.items(), key=lambda item: (-item[1], item[0][1], item[0][0]))[:10]
    reasons = [{"outcome": outcome, "reason": reason, "requests": n} for (outcome, reason), n in top]
    return {
        "requests": sum(o["requests"] for o in by_outcome.values()),
        "rows_predicted": by_outcome.get(Disposition.OK, {}).get("rows", 0),
        "by_outcome": dict(sorted(by_outcome.items())),
        "per_day": days,
        "top_refusal_reasons": reasons,
        "latency_ms": _latency_percentiles(records),
        "shadow_replays": replays,
    }


def volumes_by_model(*, since: Any, until: Any) -> list[dict[str, Any]]:
    """Requests and rows per model and version in a period (shadow replays apart), one GROUP BY."""
    return [
        {
            "model": row["model_name"],
            "version": row["version_number"],
            "requests": row["requests"],
            "rows_predicted": row["rows"] or 0,
            "refused": row["refused"],
        }
        for row in PredictionLog.objects.filter(created_at__gte=since, created_at__lt=until)
        .exclude(source=LogSource.SHADOW)
        .order_by()
        .values("model_name", "version_number")
        .annotate(
            requests=Count("id"),
            rows=Sum("n_rows", filter=Q(outcome=Disposition.OK)),
            refused=Count("id", filter=~Q(outcome=Disposition.OK)),
        )
        .order_by("model_name", "version_number")
    ]


def seals_covering(version_id: int) -> QuerySet[PredictionSeal]:
    """The Merkle seals that hold at least one of the version's log records."""
    sealed = PredictionLog.objects.filter(version_id=version_id, seal__isnull=False).order_by().values("seal_id")
    return PredictionSeal.objects.filter(pk__in=sealed.distinct()).order_by("pk")


PREDICTION_ID = re.compile(r"^(?P<record>[0-9a-f-]{36})(?:\.(?P<row>\d+))?$")


def prediction_row(prediction_id: str) -> tuple[PredictionLog | None, int | None]:
    """The logged record and row a prediction id ("<id>" or "<id>.<row>") names; (None, None)
    when it is not an id or names no logged row."""
    match = PREDICTION_ID.match(prediction_id)
    if not match:
        return None, None
    record = (
        PredictionLog.objects.select_related("version__registered_model", "seal")
        .filter(public_id=match["record"])
        .first()
    )
    row = int(match["row"]) if match["row"] is not None else None
    if record is None or (row is not None and row >= record.n_rows):
        return None, None
    return record, row
