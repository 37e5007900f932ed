"""Governance under real conditions: concurrent decisions on PostgreSQL, and a worker killed in
the middle of a check."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import warnings
from typing import Any

import pytest
import skops.io as sio
from django.db import connection
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline

from core.actors import Actor
from core.audit import verify_chain
from core.models import AuditEvent
from governance import tasks, workflow
from governance.models import CheckRun, Decision
from governance.policies import active_policy, update_policy
from lifecycle import demo_data
from lifecycle.models import ModelVersion, Status
from tests.conftest import make_version
from tests.factories import RegisteredModelFactory
from tests.governance.conftest import validated
from tests.services.conftest import wait_for

OK = "Reviewed on real data."


def _in_review(actor: Actor, model: Any, skops_bytes: bytes, train_csv: bytes, eval_csv: bytes, **kw: Any) -> Any:
    version = make_version(actor, model, skops_bytes, train_csv, eval_csv, **kw)
    workflow.submit_version(version.pk, actor=actor)
    for check in CheckRun.objects.filter(version=version):  # run here, synchronously
        tasks.run_check_task(check.pk)
    version.refresh_from_db()
    assert version.status == Status.IN_REVIEW
    return version


def _concurrently(*calls: Any) -> list[Any]:
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Any) -> None:
        try:
            barrier.wait()
            results[i] = call()
        except Exception as exc:  # collected and asserted on by the test
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@pytest.fixture
def lenient(committed_db: None) -> None:
    policy = active_policy()
    update_policy(
        policy.pk,
        actor=None,
        justification="Set for this test.",
        changes={"max_fairness_difference": 1.0, "min_fairness_ratio": 0.0},
    )


def test_concurrent_deploys_leave_exactly_one_production_version_and_an_intact_chain(
    committed_db, lenient, data_scientist, risk_officer, second_officer, skops_bytes, train_csv, eval_csv
):
    model = RegisteredModelFactory(name="race-deploy", owner=data_scientist, risk_tier="low")
    a = _in_review(data_scientist, model, skops_bytes, train_csv, eval_csv)
    b = _in_review(data_scientist, model, skops_bytes, train_csv, eval_csv)
    for v in (a, b):
        workflow.approve_version(v.pk, actor=risk_officer, justification=OK)
    results = _concurrently(
        lambda: workflow.deploy_version(a.pk, actor=risk_officer, justification="deploy a"),
        lambda: workflow.deploy_version(b.pk, actor=second_officer, justification="deploy b"),
    )
    assert not [r for r in results if isinstance(r, Exception) and "changed while" not in str(r)], results
    statuses = sorted(ModelVersion.objects.filter(registered_model=model).values_list("status", flat=True))
    assert statuses == ["approved", "production"]
    assert model.deployments.filter(ended_at__isnull=True).count() == 1
    assert verify_chain().ok


def test_concurrent_approvals_of_a_high_tier_version_count_both_officers_once(
    committed_db, lenient, data_scientist, risk_officer, second_officer, skops_bytes, train_csv, eval_csv
):
    model = RegisteredModelFactory(name="race-approve", owner=data_scientist, risk_tier="high")
    version = _in_review(data_scientist, model, skops_bytes, train_csv, eval_csv)
    validated(version)  # the policy's default: high-tier approval needs a validation report
    results = _concurrently(
        lambda: workflow.approve_version(version.pk, actor=risk_officer, justification=OK),
        lambda: workflow.approve_version(version.pk, actor=second_officer, justification=OK),
        lambda: workflow.approve_version(version.pk, actor=risk_officer, justification=OK),
    )
    errors = [r for r in results if isinstance(r, Exception)]
    # rita's second try is refused: as a repeat approval, or because the version is approved already
    assert len(errors) == 1
    assert "already approved" in str(errors[0]) or "only versions in review" in str(errors[0])
    assert ModelVersion.objects.get(pk=version.pk).status == Status.APPROVED
    assert Decision.objects.filter(version=version, kind="approve").count() == 2
    assert AuditEvent.objects.filter(action="governance.version.approved", target_id=str(version.pk)).count() == 1
    assert verify_chain().ok


@pytest.fixture(scope="module")
def slow_model_bytes(german: Any) -> bytes:
    """An MLP whose refit (the reproducibility check) takes seconds: time to kill the worker."""
    model = Pipeline(
        [
            ("prepare", demo_data._preprocessor()),
            (
                "classify",
                MLPClassifier(
                    hidden_layer_sizes=(256, 256), max_iter=300, tol=0, n_iter_no_change=10**6, random_state=0
                ),
            ),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(german[0][demo_data.NUMERIC + demo_data.CATEGORICAL], german[0]["risk"])
    return sio.dumps(model)


def test_a_worker_killed_mid_check_leads_to_exactly_one_result_after_redelivery(
    committed_db, lenient, celery_worker_process, data_scientist, slow_model_bytes, train_csv, eval_csv
):
    model = RegisteredModelFactory(name="killed-worker", owner=data_scientist)
    version = make_version(data_scientist, model, slow_model_bytes, train_csv, eval_csv)
    workflow.submit_version(version.pk, actor=data_scientist)
    check = CheckRun.objects.get(version=version, kind="reproducibility")
    wait_for(lambda: CheckRun.objects.get(pk=check.pk).status == "running", 240, "the refit to start")
    main_pid = int(subprocess.check_output(["pgrep", "-f", "services-test@"]).split()[0])
    children = subprocess.check_output(["pgrep", "-P", str(main_pid)]).split()
    for pid in children:
        os.kill(int(pid), signal.SIGKILL)  # the pool process dies mid-task, without any cleanup
    wait_for(lambda: ModelVersion.objects.get(pk=version.pk).status == Status.IN_REVIEW, 180, "the redelivered check")
    check.refresh_from_db()
    assert check.status == "passed" and check.attempts == 2
    assert CheckRun.objects.filter(version=version).count() == 5
    finished = AuditEvent.objects.filter(action="governance.check.finished", target_id=str(version.pk))
    assert sorted(e.data["check"] for e in finished) == ["fairness", "onnx", "profile", "reproducibility", "validation"]
    assert "WorkerLostError" in celery_worker_process.read_text() or "SIGKILL" in celery_worker_process.read_text()
    assert verify_chain().ok
