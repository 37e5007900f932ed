"""On PostgreSQL the database keeps the audit chain in order, whatever SQL the runtime role sends:
it may not INSERT into the trail nor touch its head, and appends only through core_audit_append,
which refuses an event that does not follow the locked head; the head is moved by the database
and always names the last event. What SQL can still append (a well-formed event with a guessed
MAC) fails verification, naming it, and does not stop the application from appending after it."""

from __future__ import annotations

import json

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from core import audit
from core.canonical import canonical_json
from core.models import AuditChainHead, AuditEvent
from tests.services.test_db_roles import as_role, runtime_role  # noqa: F401  (fixture)

INSERT = (
    "INSERT INTO governance_auditevent (seq, created_at, actor_id, actor_username, action, target_type, target_id, "
    "target_repr, data, prev_hash, hash, mac) VALUES (%s, %s, NULL, 'system', %s, '', '', '', %s, %s, %s, %s)"
)
APPEND = "SELECT core_audit_append(%s::jsonb)"


def forged_event(seq: int, prev_hash: str, *, mac: str | None = None) -> AuditEvent:
    """An event at `seq` after `prev_hash`, its hash computed right, its MAC guessed."""
    event = AuditEvent(
        seq=seq,
        created_at=timezone.now(),
        actor_username="system",
        action=audit.EVIDENCE_BASELINED,
        data={"rows": 1, "evidence": [{"row": "governance.policy:1", "sha256": "f" * 64}]},
        prev_hash=prev_hash,
    )
    event.hash = audit.compute_hash(prev_hash, audit.event_payload(event))
    event.mac = audit.compute_mac(event.hash, b"a guessed key") if mac is None else mac
    return event


def event_after(seq: int, prev_hash: str, *, mac: str | None = None) -> list:
    """The parameters of INSERT for a forged event."""
    event = forged_event(seq, prev_hash, mac=mac)
    return [seq, event.created_at, event.action, json.dumps(event.data), prev_hash, event.hash, event.mac]


def appended_after(seq: int, prev_hash: str, *, mac: str | None = None) -> list:
    """The parameter of core_audit_append for a forged event (the row core.audit passes)."""
    event = forged_event(seq, prev_hash, mac=mac)
    row = {**audit.event_payload(event), "prev_hash": prev_hash, "hash": event.hash, "mac": event.mac}
    return [canonical_json(row)]


def test_the_runtime_role_cannot_append_out_of_order_or_move_the_head_off_the_last_event(runtime_role):  # noqa: F811
    events = [audit.record("test.event", actor=None, data={"i": i}) for i in range(3)]
    last = events[-1]
    with as_role(runtime_role) as app:
        refused = {
            "an INSERT of its own, even in order": (INSERT, event_after(last.seq + 1, last.hash), "permission denied"),
            "a seq that skips one": (APPEND, appended_after(last.seq + 2, last.hash), "does not follow"),
            "a seq already taken": (APPEND, appended_after(last.seq, events[-2].hash), "does not follow"),
            "not the head's prev_hash": (APPEND, appended_after(last.seq + 1, events[0].hash), "does not follow"),
            "no MAC": (APPEND, appended_after(last.seq + 1, last.hash, mac=""), "carries no MAC"),
        }
        for what, (statement, params, reason) in refused.items():
            with pytest.raises(psycopg.Error, match=reason):
                app.execute(statement, params)
                pytest.fail(f"{what} was accepted")
        head_moves = [
            "UPDATE governance_auditchainhead SET seq = seq + 1",
            f"UPDATE governance_auditchainhead SET hash = '{'e' * 64}'",  # noqa: S608
            f"UPDATE governance_auditchainhead SET seq = {events[0].seq}, hash = '{events[0].hash}'",  # noqa: S608
            "INSERT INTO governance_auditchainhead (id, seq, hash) VALUES (2, 0, repeat('0', 64))",
            "SELECT * FROM governance_auditchainhead FOR UPDATE",
        ]
        for statement in head_moves:
            with pytest.raises(psycopg.Error, match="permission denied"):
                app.execute(statement)
        assert AuditChainHead.objects.get(pk=1).seq == last.seq
        assert audit.verify_chain().ok

        # An event that follows the head is taken, and the database moves the head to it: the
        # head names the last event without the role touching it. Its MAC was guessed.
        app.execute(APPEND, appended_after(last.seq + 1, last.hash))
    forged = AuditEvent.objects.get(seq=last.seq + 1)
    head = AuditChainHead.objects.get(pk=1)
    assert (head.seq, head.hash) == (forged.seq, forged.hash)
    with pytest.raises(CommandError, match=f"event #{forged.seq} \\(compliance.evidence.baselined\\) does not carry a"):
        call_command("verify_audit")
    after = audit.record("test.event", actor=None, data={"i": "after"})  # the chain is not broken for good
    assert (after.seq, after.prev_hash) == (forged.seq + 1, forged.hash)
    assert audit.verify_chain().first_broken_seq == forged.seq


def test_the_owner_is_held_to_the_same_order(committed_db):
    """The triggers are the table's, not a grant: the owner's own INSERT is refused the same way
    (a DBA must drop them, which the runtime role cannot)."""
    last = audit.record("test.event", actor=None, data={"i": 0})
    from django.db import connection

    with connection.cursor() as cursor, pytest.raises(Exception, match="does not follow the chain head"):
        cursor.execute(INSERT, event_after(last.seq + 5, last.hash))
