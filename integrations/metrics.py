"""Prometheus metrics at GET /metrics.

Two kinds, decided by what each costs and where its truth lives:
- what happens in a request (predictions by model, version, protocol and outcome; rows scored;
  latency; log write failures) is counted in the web process by a middleware around the
  prediction views, from the response they already built: no database round trip on the serving
  path. Under gunicorn each worker is a process, so these use prometheus-client's multiprocess
  mode when PROMETHEUS_MULTIPROC_DIR is set (`make serve` sets and empties it; gunicorn's
  child_exit hook marks a dead worker's files);
- state (versions by status, seal lag, time since the last checkpoint, open findings, the latest
  drift, checks, the webhook outbox and deliveries) is read from the database at scrape time by a
  collector: one truth for every worker, and no gauge to keep in step."""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from django.apps import apps
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from core.checkpoints import Checkpoint, CheckpointError, read_log, split_note
from core.roles import AUDITORS, RISK_OFFICERS, roles_of
from integrations import outbox
from integrations.models import WebhookDelivery
from lifecycle.models import ModelVersion, RegisteredModel, Status
from serving.models import ApiKey, PredictionLog
from serving.services import hash_key

log = logging.getLogger(__name__)

PREDICT_VIEWS = {"api-predict": "v1", "v2-infer": "v2", "v2-version-infer": "v2"}

# Metrics of the request path live in their own registry (not the global one), so the scrape
# decides how to collect them: from this process, or from every worker's files.
REQUESTS = CollectorRegistry(auto_describe=True)
PREDICTIONS = Counter(
    "modelgov_predictions",
    "Prediction requests answered, by model, version, protocol and outcome "
    "(served, refused: 4xx, unavailable: 503, error: other 5xx).",
    ["model", "version", "protocol", "outcome"],
    registry=REQUESTS,
)
ROWS = Counter(
    "modelgov_prediction_rows",
    "Rows scored in served prediction requests.",
    ["model", "version", "protocol"],
    registry=REQUESTS,
)
LATENCY = Histogram(
    "modelgov_prediction_request_seconds",
    "Wall time of prediction requests in the web process, by protocol and outcome.",
    ["protocol", "outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REQUESTS,
)
LOG_FAILURES = Counter(
    "modelgov_prediction_log_write_failures",
    "Predictions withheld (503) because the prediction log could not be written.",
    ["protocol"],
    registry=REQUESTS,
)


def _outcome(status: int) -> str:
    if status < 400:
        return "served"
    if status == 503:
        return "unavailable"
    return "refused" if status < 500 else "error"


def _log_failed(data: Any) -> bool:
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return error.get("code") == "log_unavailable"
    return isinstance(error, str) and "could not be logged" in error


def _served(data: Any, protocol: str) -> tuple[str, int]:
    """(version, rows) of a served answer, from the body the view built."""
    if not isinstance(data, dict):
        return "", 0
    if protocol == "v1":
        return str(data.get("version", "")), len(data.get("predictions") or [])
    outputs = data.get("outputs") or [{}]
    shape = outputs[0].get("shape") if isinstance(outputs[0], dict) else None
    return str(data.get("model_version", "")), int(shape[0]) if shape else 0


def observe(request: HttpRequest, response: HttpResponse, seconds: float) -> None:
    match = getattr(request, "resolver_match", None)
    protocol = PREDICT_VIEWS.get(getattr(match, "url_name", "") or "")
    if protocol is None or match is None:
        return
    outcome = _outcome(response.status_code)
    data = getattr(response, "data", None)
    if data is None and response.get("Content-Type", "").startswith("application/json"):
        # The prediction views answer with pre-rendered orjson bytes: read them back (well under a
        # millisecond for a 1,000-row answer; no database, no change to the serving path).
        try:
            data = orjson.loads(response.content)
        except (orjson.JSONDecodeError, AttributeError):
            data = None
    model, version, rows = str(match.kwargs.get("name", "")), "", 0
    if outcome == "served":
        version, rows = _served(data, protocol)
    elif not _registered(model):
        model = UNREGISTERED  # a made-up name in the URL never becomes a series of its own
    PREDICTIONS.labels(model, version, protocol, outcome).inc()
    LATENCY.labels(protocol, outcome).observe(seconds)
    if rows:
        ROWS.labels(model, version, protocol).inc(rows)
    if outcome == "unavailable" and _log_failed(data):
        LOG_FAILURES.labels(protocol).inc()


UNREGISTERED = "(unregistered)"


def _registered(name: str) -> bool:
    """Is `name` a registered model (label values come only from the registry)? Asked for
    refusals only: an answer was served by a registered model."""
    try:
        return RegisteredModel.objects.filter(name=name[:64]).exists()
    except DatabaseError:
        return False


class PredictionMetricsMiddleware:
    """Counts and times the prediction views; every other request passes untouched."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        try:
            observe(request, response, time.perf_counter() - started)
        except Exception:  # a metric never costs an answer
            log.exception("could not record prediction metrics")
        return response


# --- state, read at scrape time ------------------------------------------------------------
def _model(label: str) -> Any:
    try:
        return apps.get_model(label)
    except LookupError:  # an app not installed (yet) contributes nothing
        return None


def _gauge(name: str, doc: str, labels: list[str], rows: list[tuple[list[str], float]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in rows:
        family.add_metric(values, value)
    return family


def _state() -> Iterator[Metric]:
    now = timezone.now()
    by_status = ModelVersion.objects.values_list("status").annotate(n=Count("pk")).order_by()
    yield _gauge("modelgov_versions", "Model versions by status.", ["status"], [([s], n) for s, n in by_status])
    oldest = PredictionLog.objects.filter(seal__isnull=True).aggregate(t=Min("created_at"))["t"]
    yield _gauge(
        "modelgov_prediction_seal_lag_seconds",
        "Age of the oldest prediction record not yet sealed into a Merkle tree (0: all sealed).",
        [],
        [([], (now - oldest).total_seconds() if oldest else 0.0)],
    )
    written = _latest_checkpoint_time()
    if written is not None:
        yield _gauge(
            "modelgov_checkpoint_age_seconds",
            "Time since the latest signed checkpoint of the audit trail (its signature is checked by verify_audit).",
            [],
            [([], (now - written).total_seconds())],
        )
    CheckRun = _model("governance.CheckRun")
    if CheckRun is not None:
        checks = CheckRun.objects.values_list("kind", "status").annotate(n=Count("pk")).order_by()
        yield _gauge(
            "modelgov_checks", "Checks by kind and status.", ["kind", "status"], [([k, s], n) for k, s, n in checks]
        )
    Finding = _model("governance.Finding")
    if Finding is not None:
        open_ = (
            Finding.objects.filter(closed_at__isnull=True).values_list("severity").annotate(n=Count("pk")).order_by()
        )
        yield _gauge("modelgov_open_findings", "Open findings by severity.", ["severity"], [([s], n) for s, n in open_])
    yield from _drift()
    yield from _batches()
    deliveries = WebhookDelivery.objects.values_list("status").annotate(n=Count("pk")).order_by()
    yield _gauge(
        "modelgov_webhook_deliveries", "Webhook deliveries by status.", ["status"], [([s], n) for s, n in deliveries]
    )
    yield _gauge(
        "modelgov_webhook_outbox_backlog",
        "Audit events that webhooks announce, not yet turned into deliveries.",
        [],
        [([], outbox.backlog())],
    )


def _latest_checkpoint_time() -> datetime | None:
    tail = deque(read_log(Path(settings.CHECKPOINT_DIR)), maxlen=1)
    if not tail:
        return None
    try:
        return Checkpoint.parse(split_note(tail[0].note)[0]).time
    except CheckpointError:
        return None


def _drift() -> Iterator[Metric]:
    """PSI of each feature in the latest stored monitoring window of every servable version."""
    Window = _model("monitoring.MonitoringWindow")
    if Window is None:
        return
    rows: list[tuple[list[str], float]] = []
    latest = (
        Window.objects.filter(version__status__in=[Status.APPROVED, Status.PRODUCTION])
        .order_by("version_id", "-end")
        .select_related("version__registered_model")
    )
    seen: set[int] = set()
    for window in latest[:2000]:
        if window.version_id in seen:
            continue
        seen.add(window.version_id)
        drift = window.drift if isinstance(window.drift, dict) else {}
        for feature, values in drift.items():
            psi = values.get("psi") if isinstance(values, dict) else None
            if isinstance(psi, int | float):
                name, number = window.version.registered_model.name, str(window.version.version)
                rows.append(([name, number, str(feature)], float(psi)))
    yield _gauge(
        "modelgov_drift_psi", "PSI per feature in the latest monitoring window.", ["model", "version", "feature"], rows
    )


def _batches() -> Iterator[Metric]:
    """Rows scored by batch jobs (a hook: counted once the batch jobs' model exists)."""
    Batch = _model("serving.BatchJob")
    if Batch is None or not hasattr(Batch, "rows_done"):
        return
    total = sum(Batch.objects.values_list("rows_done", flat=True))
    yield _gauge("modelgov_batch_rows_scored", "Rows scored by batch jobs.", [], [([], float(total))])


class StateCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        try:
            yield from list(_state())
            ok = 1.0
        except DatabaseError:
            log.warning("metrics: the database could not be read", exc_info=True)
            ok = 0.0
        yield _gauge("modelgov_database_up", "1 when the scrape could read the database.", [], [([], ok)])


class _ThisProcess(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from REQUESTS.collect()


def exposition() -> bytes:
    """The text exposition of one scrape."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # every worker's counters, summed
    else:
        registry.register(_ThisProcess())
    registry.register(StateCollector())
    return generate_latest(registry)


# Who reads /metrics (model names, features, drift, findings): operations with METRICS_TOKEN, and
# the second line (risk officers, auditors) with their API key. Never anonymous.
METRICS_READERS = frozenset({RISK_OFFICERS, AUDITORS})


def authorised(request: HttpRequest) -> int:
    """200 when the request carries METRICS_TOKEN or an API key of a risk officer or an auditor;
    403 for another valid key; 401 otherwise (no credential, or an unknown one)."""
    given = request.headers.get("Authorization", "")
    scheme, _, credential = given.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return 401
    credential = credential.strip()
    token = settings.METRICS_TOKEN
    if token and hmac.compare_digest(credential.encode(), token.encode()):
        return 200
    key = ApiKey.objects.filter(key_hash=hash_key(credential), revoked_at__isnull=True).select_related("user").first()
    if key is None:
        return 401
    user = key.user
    return 200 if user is not None and user.is_active and roles_of(user) & METRICS_READERS else 403


def metrics_view(request: HttpRequest) -> HttpResponse:
    status = authorised(request)
    if status != 200:
        text = "metrics need Authorization: Bearer <METRICS_TOKEN, or a risk officer's or auditor's API key>\n"
        response = HttpResponse(text, status=status)
        if status == 401:
            response["WWW-Authenticate"] = "Bearer"
        return response
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
