"""The application's runtime role on PostgreSQL owns nothing: it cannot disable a trigger,
delete an audit event, append one but through core_audit_append, rewind the chain head or move a
version off the lifecycle table, whatever SQL it sends."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from core import audit
from core.models import AuditEvent


@pytest.fixture
def runtime_role(committed_db):
    role = f"modelgov_app_{uuid.uuid4().hex[:8]}"
    call_command("grant_runtime_role", role)
    yield role
    with connection.cursor() as cursor:
        cursor.execute(f'DROP OWNED BY "{role}"')
        cursor.execute(f'DROP ROLE "{role}"')


@contextmanager
def runtime_session(role: str) -> Iterator[None]:
    """This process's own connection as the runtime role for the block (the owner may SET ROLE to
    it): the application's code then runs with exactly the runtime role's privileges."""
    with connection.cursor() as cursor:
        cursor.execute(f'SET ROLE "{role}"')
        cursor.execute("SELECT current_user")
        assert cursor.fetchone()[0] == role
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")


def as_role(role: str) -> psycopg.Connection:
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"], port=db["PORT"] or 5432, user=role, dbname=db["NAME"], autocommit=True, connect_timeout=5
    )


def test_the_runtime_role_cannot_disable_triggers_delete_audit_events_or_rewind_the_chain(runtime_role):
    first = audit.record("test.event", actor=None, data={"i": 1})
    audit.record("test.event", actor=None, data={"i": 2})
    with as_role(runtime_role) as app:
        # what the application does: read and append
        assert app.execute("SELECT count(*) FROM governance_auditevent").fetchone()[0] >= 2
        refused = {
            "ALTER TABLE governance_auditevent DISABLE TRIGGER USER": "must be owner",
            "DELETE FROM governance_auditevent": "permission denied",
            "TRUNCATE governance_auditevent": "permission denied",
            "UPDATE governance_auditevent SET action = 'x'": "permission denied",
            f"UPDATE governance_auditchainhead SET seq = {first.seq}, hash = '{first.hash}'": "permission denied",  # noqa: S608
            "DELETE FROM governance_auditchainhead": "permission denied",
            "ALTER TABLE serving_predictionlog DISABLE TRIGGER USER": "must be owner",
            "DELETE FROM serving_predictionlog": "permission denied",
            "UPDATE governance_decision SET justification = 'x'": "permission denied",
        }
        for statement, reason in refused.items():
            with pytest.raises(psycopg.Error, match=reason):
                app.execute(statement)  # noqa: S608 (fixed statements of this test)
    assert AuditEvent.objects.filter(action="test.event").count() == 2
    call_command("verify_audit")


def test_the_runtime_role_appends_audit_events_only_through_the_append_function(runtime_role):
    """No INSERT on the trail, no lock or UPDATE on its head: a well-formed event written by the
    role itself is refused by a grant, while the application's own write path (core.audit.record,
    through core_audit_append) works as the runtime role and the chain verifies."""
    first = audit.record("test.event", actor=None, data={"i": 1})
    with as_role(runtime_role) as app:
        with pytest.raises(psycopg.Error, match="permission denied for table governance_auditevent"):
            app.execute(
                "INSERT INTO governance_auditevent (seq, created_at, actor_username, action, target_type, "
                "target_id, target_repr, data, prev_hash, hash, mac) "
                "VALUES (%s, now(), 'system', 'x', '', '', '', '{}', %s, %s, %s)",
                [first.seq + 1, first.hash, "a" * 64, "b" * 64],
            )
        with pytest.raises(psycopg.Error, match="permission denied for table governance_auditchainhead"):
            app.execute("UPDATE governance_auditchainhead SET seq = seq")
    with runtime_session(runtime_role):
        second = audit.record("test.event", actor=None, data={"i": 2, "as": "the runtime role"})
        third = audit.record("test.event", actor=None, data={"i": 3})
    assert (second.seq, second.prev_hash, third.prev_hash) == (first.seq + 1, first.hash, second.hash)
    assert AuditEvent.objects.get(pk=third.pk).mac == audit.compute_mac(third.hash)
    assert audit.verify_chain().ok
    call_command("verify_audit")


def test_the_runtime_role_cannot_change_governed_state_behind_the_services(runtime_role, production, client_key):
    """The edits a reviewer made as the runtime role (docs/ledger.md): each refused by PostgreSQL,
    by a grant (evidence is SELECT and INSERT; governed state is never deleted) or a trigger."""
    from django.contrib.auth import get_user_model

    from serving.erasure import place_hold, release_hold
    from serving.models import ApiKey, LegalHold

    officer = get_user_model().objects.get(pk=production.decisions.first().actor_id)
    hold = place_hold(model_name=production.registered_model.name, reason="Litigation.", actor=officer)
    release_hold(hold.pk, actor=officer)
    ApiKey.objects.filter(revoked_at__isnull=True).update(revoked_at="2026-01-01T00:00:00Z")
    refused = {
        "UPDATE lifecycle_modelversion SET classes = '[1, 0]'": "governed columns never change",
        "UPDATE lifecycle_modelversion SET artifact_sha256 = 'x'": "governed columns never change",
        "UPDATE lifecycle_modelversion SET personal_features = '[]', subject_field = 'x'": "never",
        "UPDATE lifecycle_dataset SET sha256 = 'x'": "content and identity never change",
        "UPDATE lifecycle_modelcard SET intended_use = 'x'": "card of a submitted version",
        "DELETE FROM lifecycle_modelcard": "permission denied",
        "UPDATE governance_shadowcomparison SET rows = 0": "permission denied",
        "UPDATE serving_apikey SET revoked_at = NULL": "a revoked key stays revoked",
        "DELETE FROM serving_apikey": "permission denied",
        "DELETE FROM serving_legalhold": "permission denied",
        "UPDATE serving_legalhold SET released_at = NULL": "released once",
        "UPDATE lifecycle_modelversion SET status = 'in_review'": "moves only along the lifecycle table",
        "UPDATE lifecycle_modelversion SET status = 'draft'": "moves only along the lifecycle table",
        "DELETE FROM lifecycle_modelversion": "permission denied",
        "UPDATE governance_decision SET manifest_sha256 = ''": "permission denied",
    }
    with as_role(runtime_role) as app:
        for statement, reason in refused.items():
            with pytest.raises(psycopg.Error, match=reason):
                app.execute(statement)  # noqa: S608 (fixed statements of this test)
    assert LegalHold.objects.filter(released_at__isnull=False).count() == 1


def test_every_periodic_job_runs_as_the_runtime_role(
    runtime_role, production, keyed, german, risk_officer, api_client, settings, eager_tasks
):
    """What beat runs, run here by the application's code with the runtime role's privileges only
    (no job may need a grant the role lacks, e.g. a row lock on evidence), with something for each
    to do: answers to seal and monitor, an incident whose report is due soon."""
    from django.utils.module_loading import import_string

    from compliance.models import Incident
    from tests.serving.conftest import rows

    settings.CHECKPOINT_SIGNING_KEY = hashlib.sha256(b"roles test key").hexdigest()
    settings.CHECKPOINT_WITNESS_KEY = hashlib.sha256(b"roles test witness").hexdigest()
    settings.INCIDENT_REMIND_BEFORE_HOURS = 48
    name = production.registered_model.name
    answered = keyed.post(f"/api/v1/models/{name}/predict", {"instances": rows(german, 3)}, format="json")
    assert answered.status_code == 200, answered.content
    api_client.force_authenticate(risk_officer)
    aware = (timezone.now() - timedelta(days=1)).isoformat()
    body = {"model": name, "severity": "widespread", "aware_at": aware, "summary": "Applicants over 70 refused."}
    registered = api_client.post("/api/v1/incidents", json.dumps(body), content_type="application/json")
    assert registered.status_code == 201, registered.content
    jobs = sorted({entry["task"] for entry in django_settings.CELERY_BEAT_SCHEDULE.values()})
    with runtime_session(runtime_role):
        for job in jobs:
            import_string(job).apply(throw=True)
    incident = Incident.objects.get(public_id=registered.json()["id"])
    assert AuditEvent.objects.filter(action=audit.INCIDENT_REMINDED, target_id=str(incident.pk)).count() == 1
    assert len(jobs) >= 10
    call_command("verify_audit")
