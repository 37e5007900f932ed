"""Serving under gunicorn with two worker processes on PostgreSQL."""

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
from django.db import DatabaseError, connection, transaction

from governance import operations, tasks, workflow
from governance.models import CheckRun
from governance.policies import active_policy, update_policy
from lifecycle import demo_data
from serving.models import PredictionLog, PredictionSeal
from serving.services import create_api_key
from tests.conftest import make_version
from tests.factories import RegisteredModelFactory
from tests.services.conftest import ROOT, connected_roles, log_keys_env, runtime_database_url, runtime_role_name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gunicorn(committed_db: None, shared_media: Path, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": runtime_database_url(),  # as the runtime role, as `make serve` runs
        "MEDIA_ROOT": str(shared_media),
        **log_keys_env(),
        "EXPOSE_WORKER_PID": "1",
        "OMP_NUM_THREADS": "1",
        "PGAPPNAME": "gunicorn-under-test",  # libpq names the workers' connections
    }
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--worker-class",
            "sync",
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
                pytest.fail(f"gunicorn did not start: {(tmp_path / 'gunicorn.log').read_text()[-2000:]}")
            time.sleep(0.2)
    yield base
    process.terminate()
    process.wait(timeout=20)
    log.close()


def _predict(base: str, key: str, body: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
    request = urllib.request.Request(  # noqa: S310 (local test server)
        f"{base}/api/v1/models/served-model/predict",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Connection": "close"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, response.headers["X-Worker-PID"], json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["X-Worker-PID"], json.loads(exc.read())


def _until_both_workers(
    base: str, key: str, body: dict[str, Any], answers: list[Any] | None = None
) -> dict[str, list[int]]:
    """Requests, four at a time so that one fast worker cannot win every accept, until each of
    the two workers has answered at least twice."""
    seen: dict[str, list[int]] = {}
    with ThreadPoolExecutor(4) as pool:
        for _ in range(100):
            for status, pid, answer in pool.map(lambda _: _predict(base, key, body), range(4)):
                seen.setdefault(pid, []).append(status)
                if answers is not None:
                    answers.append(answer)
            if len(seen) == 2 and all(len(v) >= 2 for v in seen.values()):
                return seen
    pytest.fail(f"only saw workers {list(seen)}")


@pytest.fixture
def served_model(committed_db: None, data_scientist: Any, german: Any) -> tuple[Any, str, dict[str, Any]]:
    """A model to deploy versions of, a client key, and a two-row request body."""
    policy = active_policy()
    update_policy(
        policy.pk,
        actor=None,
        justification="Set for this test.",
        changes={"max_fairness_difference": 1.0, "min_fairness_ratio": 0.0},
    )
    model = RegisteredModelFactory(name="served-model", owner=data_scientist)
    key = create_api_key(actor=None, name="two-workers")[1]
    body = {"instances": german[1][demo_data.NUMERIC + demo_data.CATEGORICAL].head(2).to_dict(orient="records")}
    return model, key, body


def _deployed(
    data_scientist: Any, risk_officer: Any, model: Any, artifact: bytes, train_csv: bytes, eval_csv: bytes
) -> Any:
    version = make_version(data_scientist, model, artifact, train_csv, eval_csv)
    workflow.submit_version(version.pk, actor=data_scientist)
    for check in CheckRun.objects.filter(version=version):
        tasks.run_check_task(check.pk)
    workflow.approve_version(version.pk, actor=risk_officer, justification="ok")
    workflow.deploy_version(version.pk, actor=risk_officer, justification="live")
    return version


def test_both_workers_follow_a_new_deployment_and_survive_lost_database_connections(
    gunicorn, served_model, data_scientist, risk_officer, skops_bytes, train_csv, eval_csv
):
    """Each worker remembers which version answered last, but every logged answer re-checks it
    in the INSERT: after a deployment the next request in every worker answers from the new
    version. With no separate health-check query, a worker whose database connection died
    since its last request reconnects on its first read: no request fails."""
    model, key, body = served_model
    first = _deployed(data_scientist, risk_officer, model, skops_bytes, train_csv, eval_csv)
    answers: list[Any] = []
    before = _until_both_workers(gunicorn, key, body, answers)
    assert all(s == [200] * len(s) for s in before.values()), before
    assert {a["version"] for a in answers} == {first.version}

    second = _deployed(data_scientist, risk_officer, model, skops_bytes, train_csv, eval_csv)
    answers.clear()
    after = _until_both_workers(gunicorn, key, body, answers)
    assert set(after) == set(before) and all(s == [200] * len(s) for s in after.values()), after
    assert {a["version"] for a in answers} == {second.version}  # from each worker's first request on

    assert connected_roles("gunicorn-under-test") == {runtime_role_name()}  # not the owner
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
            ["gunicorn-under-test"],
        )
        assert cursor.fetchone()[0] == 2  # one persistent connection per worker, both cut
    answers.clear()
    again = _until_both_workers(gunicorn, key, body, answers)
    assert set(again) == set(before) and all(s == [200] * len(s) for s in again.values()), again
    ok = PredictionLog.objects.filter(model_name="served-model", outcome="ok")
    assert ok.count() == sum(len(v) for runs in (before, after, again) for v in runs.values())
    assert ok.filter(version=second).count() == sum(len(v) for runs in (after, again) for v in runs.values())


def test_retiring_a_version_stops_both_gunicorn_workers_at_once(
    gunicorn, served_model, data_scientist, risk_officer, skops_bytes, train_csv, eval_csv
):
    model, key, body = served_model
    version = _deployed(data_scientist, risk_officer, model, skops_bytes, train_csv, eval_csv)

    before = _until_both_workers(gunicorn, key, body)
    assert all(s == [200] * len(s) for s in before.values()), before  # both workers answer (model cached)

    operations.retire_version(version.pk, actor=risk_officer, justification="Withdrawn by the credit committee.")

    after = _until_both_workers(gunicorn, key, body)
    assert set(after) == set(before)
    assert all(s == [403] * len(s) for s in after.values()), after  # every worker refuses from the first request
    served = PredictionLog.objects.filter(model_name="served-model")
    assert served.filter(outcome="ok").count() == sum(len(v) for v in before.values())
    assert served.filter(outcome="refused").count() == sum(len(v) for v in after.values())


@pytest.mark.django_db
def test_postgresql_refuses_changes_to_logged_predictions_but_lets_them_be_sealed(keyed_production_record):
    record = keyed_production_record
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE serving_predictionlog ENABLE TRIGGER USER")
    for sql in (
        "UPDATE serving_predictionlog SET outputs_json = '{}'",
        "DELETE FROM serving_predictionlog",
        "TRUNCATE serving_predictionlog CASCADE",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as c:
            c.execute(sql)
    seal = PredictionSeal.objects.create(root="0" * 64, tree_size=1, first_record=record.pk, last_record=record.pk)
    PredictionLog.objects.filter(pk=record.pk).update(seal=seal)  # attaching to a seal is the one allowed update
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        PredictionLog.objects.filter(pk=record.pk).update(seal=None)


@pytest.fixture
def keyed_production_record(db: None) -> PredictionLog:
    from serving.predict import Caller, PredictionRequest, predict

    caller = Caller(user=None, api_key=create_api_key(actor=None, name="k")[0])
    with pytest.raises(Exception):  # noqa: B017 (the refusal is what is logged here)
        predict(PredictionRequest(caller, "nothing", "v1", instances=[]))
    return PredictionLog.objects.get()


def test_an_unreachable_database_is_a_503_on_both_apis_never_a_500(committed_db, client, german):
    """Nothing can be authenticated, answered or logged: a named 503, in each API's error shape."""
    key = create_api_key(actor=None, name="outage")[1]
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    instances = german[1][demo_data.NUMERIC + demo_data.CATEGORICAL].head(1).to_dict(orient="records")
    port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = str(_free_port())  # nothing listens there: a real refused connection
    try:
        v1 = client.post(
            "/api/v1/models/any/predict", json.dumps({"instances": instances}), "application/json", **headers
        )
        v2 = client.post("/v2/models/any/infer", json.dumps({"inputs": []}), "application/json", **headers)
    finally:
        connection.close()
        connection.settings_dict["PORT"] = port
    assert v1.status_code == 503 and v1.json()["error"]["code"] == "database_unavailable", v1.content
    assert v2.status_code == 503 and "database is unreachable" in v2.json()["error"], v2.content
