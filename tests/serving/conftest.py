from __future__ import annotations

from typing import Any

import pytest

from core.actors import Actor
from governance import tasks, workflow
from governance.models import CheckRun
from governance.policies import active_policy, update_policy
from lifecycle.models import ModelVersion, Status
from serving.services import create_api_key
from tests.conftest import make_version

OK = "Reviewed."


def checked(version: ModelVersion, actor: Actor) -> ModelVersion:
    """Submit and run the checks here, synchronously. Tasks are eager meanwhile: in a
    transactional test of the services suite the submission's tasks would otherwise reach the
    real Celery worker, which may take a check first and write its ONNX file under the worker's
    media root, not this test's (the services suite proves the worker separately)."""
    from config.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        workflow.submit_version(version.pk, actor=actor)
    finally:
        app.conf.task_always_eager = before
    for check in CheckRun.objects.filter(version=version, status="queued"):
        tasks.run_check_task(check.pk)
    version.refresh_from_db()
    return version


@pytest.fixture
def production(draft_version, data_scientist, risk_officer) -> ModelVersion:
    policy = active_policy()
    update_policy(
        policy.pk,
        actor=None,
        justification="Set for this test.",
        changes={"max_fairness_difference": 1.0, "min_fairness_ratio": 0.0},
    )
    version = checked(draft_version, data_scientist)
    workflow.approve_version(version.pk, actor=risk_officer, justification=OK)
    return workflow.deploy_version(version.pk, actor=risk_officer, justification="Go live.")


@pytest.fixture
def second_version(production, data_scientist, skops_bytes, train_csv, eval_csv) -> ModelVersion:
    return make_version(data_scientist, production.registered_model, skops_bytes, train_csv, eval_csv)


@pytest.fixture
def client_key(db: None) -> str:
    return create_api_key(actor=None, name="scoring-client")[1]


@pytest.fixture
def keyed(api_client, client_key):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {client_key}")
    return api_client


def rows(german: Any, n: int) -> list[dict[str, Any]]:
    from lifecycle import demo_data

    frame = german[1][demo_data.NUMERIC + demo_data.CATEGORICAL].head(n)
    return frame.to_dict(orient="records")


def set_status(version: ModelVersion, status: str) -> None:
    """Put the version's row in `status` behind the workflow's back, as a DBA would (the ledger's
    triggers refuse a move the lifecycle table does not allow, so they are dropped for it): a
    shortcut to a state that serving must refuse. Exactly that row changes, and it reads `status`."""
    from tests.ledger import triggers_dropped

    with triggers_dropped():
        updated = ModelVersion.objects.filter(pk=version.pk).update(status=Status(status))
    assert updated == 1, f"no row for version {version.pk}"
    assert ModelVersion.objects.values_list("status", flat=True).get(pk=version.pk) == status
