"""The application's runtime role on PostgreSQL owns nothing: it cannot disable a trigger,
delete an audit event or rewind the chain head, whatever SQL it sends."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

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
            f"UPDATE governance_auditchainhead SET seq = {first.seq}, hash = '{first.hash}'": "only moves forward",  # noqa: S608
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
