"""GET /metrics: Prometheus text that prometheus_client's own parser reads, counting the
predictions a test made (by model, version, protocol, outcome), with state read from the
database at scrape time, and closed by METRICS_TOKEN when it is set."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.serving.conftest import rows

TOKEN = "scrape-secret"


@pytest.fixture(autouse=True)
def metrics_token(settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN


def scrape(client: Client, **headers: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {TOKEN}")
    response = client.get("/metrics", **headers)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_the_predictions_made(production, keyed, german, client):
    before = scrape(client)
    url = f"/api/v1/models/{production.registered_model.name}/predict"
    for _ in range(3):
        assert keyed.post(url, {"instances": rows(german, 4)}, format="json").status_code == 200
    assert keyed.post(url, {"instances": [{"age": "x"}]}, format="json").status_code == 400
    v2 = f"/v2/models/{production.registered_model.name}/infer"
    assert keyed.post(v2, {"inputs": []}, format="json").status_code == 400
    after = scrape(client)
    labels = {"model": production.registered_model.name, "version": str(production.version), "protocol": "v1"}
    served = value(after, "modelgov_predictions_total", **labels, outcome="served")
    assert served - value(before, "modelgov_predictions_total", **labels, outcome="served") == 3
    rows_scored = value(after, "modelgov_prediction_rows_total", **labels) - value(
        before, "modelgov_prediction_rows_total", **labels
    )
    assert rows_scored == 12
    refused = {"model": production.registered_model.name, "version": "", "outcome": "refused"}
    assert (
        value(after, "modelgov_predictions_total", **refused, protocol="v1")
        - value(before, "modelgov_predictions_total", **refused, protocol="v1")
        == 1
    )
    assert (
        value(after, "modelgov_predictions_total", **refused, protocol="v2")
        - value(before, "modelgov_predictions_total", **refused, protocol="v2")
        == 1
    )
    count = value(after, "modelgov_prediction_request_seconds_count", protocol="v1", outcome="served")
    assert count - value(before, "modelgov_prediction_request_seconds_count", protocol="v1", outcome="served") == 3
    # state from the database
    assert value(after, "modelgov_versions", status="production") == 1
    assert value(after, "modelgov_prediction_seal_lag_seconds") > 0
    assert value(after, "modelgov_database_up") == 1
    assert ("modelgov_checks", (("kind", "validation"), ("status", "passed"))) in after


def test_metrics_token_closes_the_endpoint(client, settings, db):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert scrape(client, HTTP_AUTHORIZATION="Bearer scrape-secret")[("modelgov_database_up", ())] == 1
