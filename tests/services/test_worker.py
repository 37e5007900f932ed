"""Submission on PostgreSQL hands its check to a real Celery worker through Redis."""

from __future__ import annotations

import pytest
from django.conf import settings

from core.models import AuditEvent
from governance import workflow
from lifecycle.models import ModelVersion, Status
from tests.conftest import make_version
from tests.factories import RegisteredModelFactory


def test_the_suite_really_uses_postgresql_and_a_broker():
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert settings.CELERY_TASK_ALWAYS_EAGER is False


def test_submission_is_checked_by_the_real_worker(
    committed_db, celery_worker_process, data_scientist, skops_bytes, train_csv, eval_csv
):
    from tests.services.conftest import WORKER_APP_NAME, connected_roles, runtime_role_name, wait_for

    model = RegisteredModelFactory(name="credit-risk", owner=data_scientist)
    version = make_version(data_scientist, model, skops_bytes, train_csv, eval_csv)
    workflow.submit_version(version.pk, actor=data_scientist)
    assert ModelVersion.objects.get(pk=version.pk).status == Status.CHECKING
    seen: set[str] = set()  # the roles the worker's connections used while it worked

    def checked() -> bool:
        seen.update(connected_roles(WORKER_APP_NAME))
        return ModelVersion.objects.get(pk=version.pk).status == Status.IN_REVIEW

    wait_for(checked, message="the worker to finish the checks")
    statuses = dict(version.checks.values_list("kind", "status"))
    assert statuses == {
        "validation": "passed",
        "fairness": "failed",
        "reproducibility": "passed",
        "onnx": "passed",
        "profile": "passed",
    }
    event = AuditEvent.objects.get(action="governance.version.in_review", target_id=str(version.pk))
    assert event.actor_username == "system"
    log = celery_worker_process.read_text()
    assert log.count("governance.tasks.run_check_task") >= 5 and "succeeded" in log
    # the worker did all this as the runtime role, not as the owner this test process is
    seen.update(connected_roles(WORKER_APP_NAME))
    assert seen == {runtime_role_name()}


def test_tampering_is_caught_by_the_real_worker(
    committed_db, celery_worker_process, data_scientist, skops_bytes, train_csv, eval_csv
):
    from tests.services.conftest import wait_for

    model = RegisteredModelFactory(name="credit-risk-2", owner=data_scientist)
    version = make_version(data_scientist, model, skops_bytes, train_csv, eval_csv)
    with open(version.artifact.path, "ab") as handle:
        handle.write(b"tampered")
    workflow.submit_version(version.pk, actor=data_scientist)
    wait_for(
        lambda: ModelVersion.objects.get(pk=version.pk).status == Status.IN_REVIEW,
        message="the worker to finish the checks",
    )
    assert set(version.checks.values_list("status", flat=True)) == {"error"}
    assert AuditEvent.objects.filter(action="lifecycle.artifact.tampered", target_id=str(version.pk)).exists()
    from django.core.management import call_command

    call_command("verify_audit")  # the chain written by two processes is intact


@pytest.mark.django_db
def test_postgresql_refuses_update_delete_and_truncate_of_audit_rows(data_scientist):
    from django.db import DatabaseError, connection, transaction

    from core import audit

    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # (the persona's role grant is an audit row)
        cursor.execute("ALTER TABLE governance_auditevent ENABLE TRIGGER USER")
    event = audit.record("test.event", actor=data_scientist)
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE refuses pending FK checks
    for sql in (
        "UPDATE governance_auditevent SET action = 'x'",
        "DELETE FROM governance_auditevent",
        "TRUNCATE governance_auditevent",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as c:
            c.execute(sql)
    assert AuditEvent.objects.get(pk=event.pk).action == "test.event"
