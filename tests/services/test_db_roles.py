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
        "DELETE FROM lifecycle_modelversion": "permission denied",
        "UPDATE governance_decision SET manifest_sha256 = ''": "permission denied",
    }
    with as_role(runtime_role) as app:
        for statement, reason in refused.items():
            with pytest.raises(psycopg.Error, match=reason):
                app.execute(statement)  # noqa: S608 (fixed statements of this test)
    assert LegalHold.objects.filter(released_at__isnull=False).count() == 1
