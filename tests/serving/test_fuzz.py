"""Schemathesis fuzzes EVERY operation of the OpenAPI schema the app serves
(`/api/schema/`), with data that fits the schema and data that does not, authenticated as the
caller each endpoint is for. No generated request may get a 5xx, and every answer or refusal of
a prediction endpoint (v1 predict, v2 infer) writes exactly one log record.

One test walks every operation (each runs its own Hypothesis loop): the served version and its
checks are set up once, not once per operation. A failure is collected, with the request and the
server's traceback, and all of them are reported together at the end. A second test puts a NUL
in each query and body text in turn (Hypothesis seldom does; PostgreSQL refuses it in text)."""

from __future__ import annotations

import itertools
import json
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.urls import Resolver404, resolve
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from config.wsgi import application
from serving.models import PredictionLog
from serving.services import create_api_key
from tests.conftest import upload
from tests.serving.conftest import rows
from tests.serving.test_predict import predict

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
OPERATIONS = [result.ok() for result in schema.get_all_operations()]

EXAMPLES = 10  # per operation and generation mode (positive, negative): about 600 requests in all
SLOW_EXAMPLES = 2  # PDFs are rendered (seconds each under load)
PREDICTION_OPERATIONS = ("/predict", "/infer")


def examples_for(path: str) -> int:
    return SLOW_EXAMPLES if path.endswith(".pdf") else EXAMPLES


def is_serving(path: str) -> bool:
    return path.startswith("/v2/") or path.endswith("/predict")


@contextmanager
def wsgi_calls_keep_the_test_connection() -> Iterator[None]:
    """Called as a WSGI app (not through Django's test client), each request would close the test
    transaction's connection at its end (on PostgreSQL: the next query finds it closed); the test
    client disconnects this handler during its own requests only, and reconnects it after each,
    so this is entered after the last test-client request."""
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def server_tracebacks() -> Iterator[list[str]]:
    """The traceback of every exception the app turned into a 500 (the WSGI client only sees the
    generic page)."""
    caught: list[str] = []

    def remember(sender: Any, request: Any = None, **kwargs: Any) -> None:
        caught.append(traceback.format_exc())

    signals.got_request_exception.connect(remember)
    yield caught
    signals.got_request_exception.disconnect(remember)


@dataclass
class Target:
    """What the generated requests are aimed with: real path values, a key per persona, and
    what the server raised."""

    real: dict[str, Any]
    keys: dict[str, str]
    tracebacks: list[str]
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)


def fuzz_operation(operation: Any, mode: GenerationMode, target: Target) -> list[str]:
    """Send `operation` the generated requests of `mode`; what went wrong, one line each."""
    problems: list[str] = []
    counter = itertools.count()
    prediction = operation.path.endswith(PREDICTION_OPERATIONS)

    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(
        max_examples=examples_for(operation.path),
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any) -> None:
        i = next(counter)
        if i % 2 == 0:  # half the cases reach the real model, version and prediction
            for name in case.path_parameters or {}:
                if name in target.real:
                    case.path_parameters[name] = target.real[name]
        persona = "client" if is_serving(operation.path) else ("officer", "scientist")[i // 2 % 2]
        path = case.formatted_path
        try:
            resolve(path)
            routed = True
        except Resolver404:
            routed = False  # (an invalid path parameter that no URL matches: Django's own 404)
        before_logs = PredictionLog.objects.count()
        before_errors = len(target.tracebacks)
        response = case.call(headers={"Authorization": f"Bearer {target.keys[persona]}"})
        target.statuses[operation.label, response.status_code] += 1
        where = f"{case.method} {path} as {persona} ({mode.value}) body={str(case.body)[:300]!r}"
        try:
            case.validate_response(response, checks=[not_a_server_error])
        except (AssertionError, BaseExceptionGroup) as exc:  # (schemathesis' FailureGroup: collected)
            cause = "".join(target.tracebacks[before_errors:])[-3000:]
            problems.append(f"{where} -> {response.status_code} {exc}\n{cause}")
            return
        logged = PredictionLog.objects.count() - before_logs
        # (a 429 is answered before the view, unlogged by design; the rate is set out of reach)
        if prediction and routed and response.status_code not in (401, 429) and logged != 1:
            problems.append(f"{where} -> {response.status_code} wrote {logged} log records, not 1")

    try:
        fuzz()
    except Unsatisfiable:  # (no parameter or body to get wrong, as for /v2/health/live)
        assert mode is GenerationMode.NEGATIVE, operation.label
    return problems


@pytest.mark.django_db
def test_no_generated_request_to_any_endpoint_gets_a_5xx_and_every_prediction_refusal_is_logged(
    production, client_key, keyed, german, risk_officer, data_scientist, settings, server_tracebacks
) -> None:
    settings.SERVING_RATE_PER_KEY = "10000000/min"
    settings.API_KEY_DAILY_QUOTA = 0
    answered = predict(keyed, instances=rows(german, 1))
    assert answered.status_code == 200, answered.content
    target = Target(
        real={
            "name": production.registered_model.name,
            "version": production.version,
            "prediction_id": answered.json()["prediction_ids"][0],
        },
        keys={
            "client": client_key,
            "officer": create_api_key(actor=None, name="fuzz-officer", username=risk_officer.username)[1],
            "scientist": create_api_key(actor=None, name="fuzz-scientist", username=data_scientist.username)[1],
        },
        tracebacks=server_tracebacks,
    )
    assert len(OPERATIONS) >= 30, [op.label for op in OPERATIONS]  # every app's endpoints, not only serving's
    failures: dict[str, list[str]] = {}
    timings: dict[str, float] = {}
    with wsgi_calls_keep_the_test_connection():
        for operation in OPERATIONS:
            started = time.perf_counter()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                failures.setdefault(operation.label, []).extend(fuzz_operation(operation, mode, target))
            timings[operation.label] = time.perf_counter() - started

    slowest = sorted(timings.items(), key=lambda item: -item[1])[:5]
    print("slowest operations:", ", ".join(f"{label} {seconds:.1f}s" for label, seconds in slowest))
    for operation in OPERATIONS:
        tally = sorted((status, n) for (label, status), n in target.statuses.items() if label == operation.label)
        print(f"{operation.label}: " + ", ".join(f"{status}x{n}" for status, n in tally))
    found = {label: problems for label, problems in failures.items() if problems}
    report = "\n\n".join(f"== {label}: {len(p)} failing\n{p[0]}" for label, p in found.items())
    assert not found, report


def nul_variants(value: Any) -> Iterator[Any]:
    """Copies of `value`, each with a NUL in the middle of ONE of its texts (keys included), so
    that the others (an enum, an id) stay valid and the request gets as far as it can."""
    if isinstance(value, str):
        yield value[:1] + "\x00" + value[1:]
    elif isinstance(value, list):
        for i, item in enumerate(value):
            for variant in nul_variants(item):
                yield [*value[:i], variant, *value[i + 1 :]]
    elif isinstance(value, dict):
        for key, item in value.items():
            for variant in nul_variants(key):
                yield {**{k: v for k, v in value.items() if k != key}, variant: item}
            for variant in nul_variants(item):
                yield {**value, key: variant}


def send_nul_everywhere(operation: Any, target: Target) -> list[str]:
    """A few cases of `operation` at the real model, version and prediction, each sent once per
    query and body text with a NUL in that text; the 5xx among them, and any prediction request
    not logged exactly once."""
    problems: list[str] = []
    prediction = operation.path.endswith(PREDICTION_OPERATIONS)

    @given(case=operation.as_strategy())
    @hypothesis_settings(
        max_examples=3,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any) -> None:
        for name in case.path_parameters or {}:
            case.path_parameters[name] = target.real.get(name, case.path_parameters[name])
        query, body = case.query or {}, case.body
        variants = [(q, body, True) for q in nul_variants(query)] or [({"q": "a\x00b"}, body, True)]
        if body is not None and not isinstance(body, bytes):
            variants += [(query, b, False) for b in nul_variants(body)]
        persona = "client" if is_serving(operation.path) else "officer"
        for case.query, case.body, in_query in variants:
            before_errors, before_logs = len(target.tracebacks), PredictionLog.objects.count()
            # A NUL in the query string is refused before any view, the caller still unknown (as a
            # 401 is): config.middleware.RefuseNulMiddleware, unlogged by design.
            at_view = prediction and not in_query
            response = case.call(headers={"Authorization": f"Bearer {target.keys[persona]}"})
            target.statuses[operation.label, response.status_code] += 1
            where = f"{case.method} {case.formatted_path} query={case.query!r} body={str(case.body)[:300]!r}"
            if response.status_code >= 500:
                cause = "".join(target.tracebacks[before_errors:])[-3000:]
                problems.append(f"{where} -> {response.status_code}\n{cause}")
            elif at_view and (logged := PredictionLog.objects.count() - before_logs) != 1:
                problems.append(f"{where} -> {response.status_code} wrote {logged} log records, not 1")

    fuzz()
    return problems


@pytest.mark.django_db
def test_nul_in_every_query_and_body_text_of_every_operation_is_never_a_5xx(
    production, client_key, keyed, german, risk_officer, settings, server_tracebacks
) -> None:
    """Hypothesis seldom puts a NUL in a text; SQLite stores one, PostgreSQL refuses it (a 500
    unless refused first). So every operation also gets cases whose every query and body text
    holds one."""
    settings.SERVING_RATE_PER_KEY = "10000000/min"
    answered = predict(keyed, instances=rows(german, 1))
    target = Target(
        real={
            "name": production.registered_model.name,
            "version": production.version,
            "prediction_id": answered.json()["prediction_ids"][0],
        },
        keys={
            "client": client_key,
            "officer": create_api_key(actor=None, name="nul-officer", username=risk_officer.username)[1],
        },
        tracebacks=server_tracebacks,
    )
    failures: list[str] = []
    with wsgi_calls_keep_the_test_connection():
        for operation in OPERATIONS:
            if not operation.path.endswith(".pdf"):  # (slow; their ids and dates are parsed before any query)
                failures += send_nul_everywhere(operation, target)
    assert not failures, "\n\n".join(failures[:10])


# Hostile cases found by hand (docs/operations-limits.md): each must be a named refusal, logged
# like any refused request, never a 500.


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.django_db
@pytest.mark.parametrize("where", ["instances", "request_id", "business_keys"])
def test_a_v1_body_nested_950_deep_is_a_logged_400_naming_the_depth(production, keyed, german, where):
    body = {"instances": rows(german, 1)}
    text = json.dumps(body)[:-1] + f', "{where}": {_nested(950)}}}'
    before = PredictionLog.objects.count()
    response = keyed.post("/api/v1/models/credit-risk/predict", text, content_type="application/json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "too_deep" and "nested" in error["message"]
    assert PredictionLog.objects.count() == before + 1
    record = PredictionLog.objects.order_by("-pk").first()
    assert record.outcome == "invalid" and record.reason.startswith("too_deep:")


@pytest.mark.django_db
def test_a_v2_body_nested_950_deep_is_a_logged_400_naming_the_depth(production, keyed):
    text = '{"id": ' + _nested(950) + ', "inputs": [{"name": "age", "datatype": "INT64", "shape": [1], "data": [1]}]}'
    before = PredictionLog.objects.count()
    response = keyed.post("/v2/models/credit-risk/infer", text, content_type="application/json")
    assert response.status_code == 400, response.content
    assert "nested" in response.json()["error"]
    assert PredictionLog.objects.count() == before + 1
    assert PredictionLog.objects.order_by("-pk").first().reason.startswith("too_deep:")


@pytest.mark.django_db
@pytest.mark.parametrize("crlf_rows", [0, 3], ids=["cr-only", "cr-in-a-crlf-file"])
def test_a_batch_csv_with_bare_carriage_returns_is_a_named_400_and_leaves_no_input_file(
    production, keyed, german, media_root, eager_tasks, crlf_rows
):
    from serving.models import BatchJob

    frame = german[1].head(6)
    lines = frame.to_csv(index=False).splitlines()
    text = "\r\n".join(lines[: crlf_rows + 1]) + ("\r\n" if crlf_rows else "") + "\r".join(lines[crlf_rows + 1 :])
    data = {"data": upload("loans.csv", (text + "\r").encode(), "text/csv")}
    response = keyed.post("/api/v1/models/credit-risk/batches", data)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_batch" and "carriage return" in error["message"]
    assert not BatchJob.objects.exists()
    inputs = media_root / "batches" / "inputs"
    assert not inputs.exists() or not any(inputs.iterdir())


@pytest.mark.django_db
def test_a_batch_row_with_a_text_over_its_cap_fails_by_name_and_is_logged_cut(
    production, keyed, german, media_root, eager_tasks, settings, django_capture_on_commit_callbacks
):
    from serving.models import BatchJob

    settings.SERVING_MAX_TEXT_CHARS = 100
    frame = german[1].head(5).copy()
    frame.loc[2, "purpose"] = "p" * 50_000
    with django_capture_on_commit_callbacks(execute=True):
        response = keyed.post(
            "/api/v1/models/credit-risk/batches", {"data": upload("loans.csv", frame.to_csv(index=False).encode())}
        )
    assert response.status_code == 202, response.content
    job = BatchJob.objects.get()
    assert (job.rows_total, job.rows_failed) == (5, 1)
    refused = PredictionLog.objects.get(source="batch", outcome="invalid")
    from serving.inputs import text_cap

    cap = text_cap(next(c for c in production.input_schema if c["name"] == "purpose"))  # its categories' cap
    assert cap < 100 and f"purpose is longer than {cap} characters" in refused.reason
    assert len(refused.inputs_json) < 5_000
    assert sum(len(r.inputs_json) for r in PredictionLog.objects.filter(outcome="ok")) < 5_000


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/v2/models/credit-risk", "/v2/models/credit-risk/ready"])
def test_role_less_callers_get_403_from_v2_metadata_as_from_v1(production, api_client, keyed, outsider, path):
    from django.test import Client

    assert keyed.get(path).status_code == 200  # a client key (bound to no person) may
    person = Client()
    person.force_login(outsider)
    assert person.get(path).status_code == 403
    bound = create_api_key(actor=None, name="outsider-key", username=outsider.username)[1]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {bound}")
    response = api_client.get(path)
    assert response.status_code == 403 and "no role" in response.json()["error"]
    # (v1 says the same to the same callers)
    assert api_client.post("/api/v1/models/credit-risk/predict", {}, format="json").status_code == 403
