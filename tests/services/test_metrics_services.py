"""/metrics under gunicorn as `make serve` runs it: two sync workers in prometheus-client's
multiprocess mode (PROMETHEUS_MULTIPROC_DIR, `--config python:config.gunicorn`). Whichever
worker answers the scrape counts the predictions both workers answered."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from governance import tasks, workflow
from governance.models import CheckRun
from governance.policies import active_policy, update_policy
from lifecycle import demo_data
from serving.services import create_api_key
from tests.conftest import make_version
from tests.factories import RegisteredModelFactory
from tests.services.conftest import ROOT, log_keys_env, runtime_database_url

MODEL = "metered-model"
TOKEN = "services-scrape-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gunicorn_multiprocess(committed_db: None, shared_media: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """gunicorn started with `make serve`'s command line and environment, on the test database."""
    port = _free_port()
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()  # `make serve` empties it at start: a fresh folder here
    env = {
        **os.environ,
        "DATABASE_URL": runtime_database_url(),  # as the runtime role, as `make serve` runs
        "MEDIA_ROOT": str(shared_media),
        **log_keys_env(),
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "METRICS_TOKEN": TOKEN,
        "EXPOSE_WORKER_PID": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PGAPPNAME": "gunicorn-metrics-test",
    }
    log_path = tmp_path / "gunicorn.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--config",
            "python:config.gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--threads",
            "1",
            "--access-logfile",
            "-",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/v2/health/live", timeout=2)  # noqa: S310 (local test server)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"gunicorn did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.2)
    yield base, multiproc
    process.terminate()
    process.wait(timeout=20)
    log.close()


def _deploy(data_scientist: Any, risk_officer: Any, skops_bytes: bytes, train_csv: bytes, eval_csv: bytes) -> Any:
    update_policy(
        active_policy().pk,
        actor=None,
        justification="Set for this test.",
        changes={"max_fairness_difference": 1.0, "min_fairness_ratio": 0.0},
    )
    model = RegisteredModelFactory(name=MODEL, owner=data_scientist)
    version = make_version(data_scientist, model, skops_bytes, train_csv, eval_csv)
    workflow.submit_version(version.pk, actor=data_scientist)
    for check in CheckRun.objects.filter(version=version):
        tasks.run_check_task(check.pk)  # in this process: the test needs no Celery worker
    workflow.approve_version(version.pk, actor=risk_officer, justification="ok")
    workflow.deploy_version(version.pk, actor=risk_officer, justification="live")
    return version


def _post(base: str, path: str, key: str, body: dict[str, Any]) -> tuple[int, str]:
    request = urllib.request.Request(  # noqa: S310 (local test server)
        f"{base}{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Connection": "close"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            response.read()
            return response.status, response.headers["X-Worker-PID"]
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code, exc.headers["X-Worker-PID"]


def _scrape(base: str) -> tuple[str, dict[str, list[Any]]]:
    """(the answering worker's pid, samples by name) of one GET /metrics."""
    request = urllib.request.Request(  # noqa: S310 (local test server)
        f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}", "Connection": "close"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        assert response.status == 200
        text = response.read().decode()
        pid = response.headers["X-Worker-PID"]
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return pid, samples


def _total(samples: dict[str, list[Any]], name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (every version, every pid)."""
    return sum(s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics_count_every_prediction_across_two_gunicorn_workers_in_multiprocess_mode(
    gunicorn_multiprocess, committed_db, data_scientist, risk_officer, german, skops_bytes, train_csv, eval_csv
):
    base, multiproc = gunicorn_multiprocess
    version = _deploy(data_scientist, risk_officer, skops_bytes, train_csv, eval_csv)
    key = create_api_key(actor=None, name="metrics-two-workers")[1]
    body = {"instances": german[1][demo_data.NUMERIC + demo_data.CATEGORICAL].head(2).to_dict(orient="records")}
    path = f"/api/v1/models/{MODEL}/predict"
    bad = {"instances": [{"age": "old"}]}  # refused (400), and counted as such

    _, before = _scrape(base)
    assert _total(before, "modelgov_predictions_total", model=MODEL) == 0

    served: dict[str, int] = {}
    refused: dict[str, int] = {}
    # Four at a time, so that one fast worker cannot win every accept, until both answered.
    with ThreadPoolExecutor(4) as pool:
        for _ in range(100):
            for status, pid in pool.map(lambda _: _post(base, path, key, body), range(4)):
                assert status == 200
                served[pid] = served.get(pid, 0) + 1
            status, pid = _post(base, path, key, bad)
            assert status == 400
            refused[pid] = refused.get(pid, 0) + 1
            if len(served) == 2 and all(n >= 3 for n in served.values()):
                break
    assert len(served) == 2, f"only worker(s) {list(served)} answered"
    # Each worker wrote its own counters: the sum below is across two processes' files.
    assert {f"counter_{pid}.db" for pid in served} <= {p.name for p in multiproc.iterdir()}

    # Every scrape, whichever worker answers it, reports the same sums.
    scrapes: dict[str, dict[str, list[Any]]] = {}
    with ThreadPoolExecutor(4) as pool:
        for _ in range(50):
            for pid, samples in pool.map(lambda _: _scrape(base), range(4)):
                scrapes[pid] = samples
            if len(scrapes) == 2:
                break
    assert set(scrapes) == set(served), "both workers answered a scrape"
    labels = {"model": MODEL, "protocol": "v1"}
    for samples in scrapes.values():
        assert _total(samples, "modelgov_predictions_total", **labels, outcome="served") == sum(served.values())
        assert _total(
            samples, "modelgov_predictions_total", **labels, version=str(version.version), outcome="served"
        ) == sum(served.values())
        assert _total(samples, "modelgov_predictions_total", **labels, outcome="refused") == sum(refused.values())
        assert _total(samples, "modelgov_prediction_rows_total", **labels) == 2 * sum(served.values())
        assert _total(samples, "modelgov_prediction_request_seconds_count", protocol="v1", outcome="served") == sum(
            served.values()
        )
        assert _total(samples, "modelgov_versions", status="production") == 1  # state, from the database
        assert _total(samples, "modelgov_database_up") == 1
