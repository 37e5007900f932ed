"""The audit trail is hash-chained; verify_audit names the first broken event."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from core import audit
from core.models import AuditEvent

pytestmark = pytest.mark.django_db


def make_history(actor, n: int = 5) -> list[AuditEvent]:
    return [audit.record("test.event", actor=actor, data={"i": i, "text": "é"}) for i in range(n)]


def test_events_chain_each_to_the_previous(data_scientist):
    earlier = AuditEvent.objects.order_by("seq").last()  # (the migration's baseline, the persona's role)
    events = make_history(data_scientist)
    assert events[0].prev_hash == (earlier.hash if earlier else audit.GENESIS_HASH)
    assert AuditEvent.objects.order_by("seq").first().prev_hash == audit.GENESIS_HASH
    for before, after in zip(events, events[1:], strict=False):
        assert after.prev_hash == before.hash
        assert after.seq == before.seq + 1
    assert events[0].actor_username == "dana"


def test_verify_audit_passes_on_an_intact_history(data_scientist, capsys):
    make_history(data_scientist)
    call_command("verify_audit")
    assert f"{AuditEvent.objects.count()} events verified" in capsys.readouterr().out


def _raw(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # run the deferred foreign-key checks first: ALTER TABLE refuses pending trigger events
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE governance_auditevent DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE governance_auditevent ENABLE TRIGGER USER")


def test_verify_audit_names_an_edited_event(data_scientist):
    events = make_history(data_scientist)
    _raw("UPDATE governance_auditevent SET data = %s WHERE seq = %s", ['{"i": 99, "text": "é"}', events[2].seq])
    with pytest.raises(CommandError, match=f"event #{events[2].seq} \\(test.event\\) was altered"):
        call_command("verify_audit")


def test_verify_audit_names_a_deleted_event(data_scientist):
    events = make_history(data_scientist)
    _raw("DELETE FROM governance_auditevent WHERE seq = %s", [events[1].seq])
    with pytest.raises(CommandError, match=f"event #{events[1].seq} is missing"):
        call_command("verify_audit")


def test_verify_audit_detects_swapped_events(data_scientist):
    events = make_history(data_scientist)
    a, b = events[1], events[2]
    # swap the contents of two rows, keeping their sequence numbers
    _raw(
        "UPDATE governance_auditevent SET data = %s, hash = %s WHERE seq = %s",
        ['{"i": 2, "text": "é"}', "x" * 64, a.seq],
    )
    _raw(
        "UPDATE governance_auditevent SET data = %s, hash = %s WHERE seq = %s", ['{"i": 1, "text": "é"}', a.hash, b.seq]
    )
    with pytest.raises(CommandError, match="BROKEN"):
        call_command("verify_audit")


def test_verify_audit_detects_a_removed_last_event(data_scientist):
    events = make_history(data_scientist)
    _raw("DELETE FROM governance_auditevent WHERE seq = %s", [events[-1].seq])
    with pytest.raises(CommandError, match="head says"):
        call_command("verify_audit")


def test_admin_cannot_change_or_delete_audit_events(admin_client, data_scientist):
    event = make_history(data_scientist, 1)[0]
    assert admin_client.get(f"/admin/core/auditevent/{event.pk}/delete/").status_code == 403
    response = admin_client.post(f"/admin/core/auditevent/{event.pk}/change/", {"action": "x"})
    assert response.status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).action == "test.event"
