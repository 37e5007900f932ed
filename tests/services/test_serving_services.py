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
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import DatabaseError, connection, transaction

from governance import checks, workflow
from governance.models import CheckRun
from governance.policies import active_policy
from lifecycle import demo_data
from serving.models import PredictionLog, PredictionSeal
from serving.services import create_api_key
from tests.conftest import make_version
from tests.factories import RegisteredModelFactory
from tests.services.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gunicorn(committed_db: None, shared_media: Path, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    db = django_settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{connection.settings_dict['NAME']}",
        "MEDIA_ROOT": str(shared_media),
        "EXPOSE_WORKER_PID": "1",
        "OMP_NUM_THREADS": "1",
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


def _until_both_workers(base: str, key: str, body: dict[str, Any]) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = {}
    for _ in range(400):
        status, pid, _ = _predict(base, key, body)
        seen.setdefault(pid, []).append(status)
        if len(seen) == 2 and all(len(v) >= 2 for v in seen.values()):
            return seen
    pytest.fail(f"only saw workers {list(seen)}")


def test_retiring_a_version_stops_both_gunicorn_workers_at_once(
    gunicorn, data_scientist, risk_officer, skops_bytes, train_csv, eval_csv, german
):
    policy = active_policy()
    type(policy).objects.filter(pk=policy.pk).update(max_fairness_difference=1.0, min_fairness_ratio=0.0)
    model = RegisteredModelFactory(name="served-model", owner=data_scientist)
    version = make_version(data_scientist, model, skops_bytes, train_csv, eval_csv)
    workflow.submit_version(version.pk, actor=data_scientist)
    for check in CheckRun.objects.filter(version=version):
        checks.run_check(check.pk)
    workflow.approve_version(version.pk, actor=risk_officer, justification="ok")
    workflow.deploy_version(version.pk, actor=risk_officer, justification="live")
    key = create_api_key(actor=None, name="two-workers")[1]
    body = {"instances": german[1][demo_data.NUMERIC + demo_data.CATEGORICAL].head(2).to_dict(orient="records")}

    before = _until_both_workers(gunicorn, key, body)
    assert all(s == [200] * len(s) for s in before.values()), before  # both workers answer (model cached)

    workflow.retire_version(version.pk, actor=risk_officer, justification="Withdrawn by the credit committee.")

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
    from serving.predict import Caller, serve

    caller = Caller(user=None, api_key=create_api_key(actor=None, name="k")[0])
    with pytest.raises(Exception):  # noqa: B017 (the refusal is what is logged here)
        serve(caller=caller, model_name="nothing", version_number=None, instances=[])
    return PredictionLog.objects.get()
