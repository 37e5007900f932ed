"""The audit trail is hash-chained and every event carries a MAC under a key the database never
sees; verify_audit names the first broken event."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from core import audit
from core.models import AuditChainHead, AuditEvent

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


# --- the MAC: a key the database never sees ---------------------------------------------------
def test_every_event_carries_an_hmac_of_its_hash_under_the_audit_mac_key(data_scientist):
    for event in make_history(data_scientist, 3):
        stored = AuditEvent.objects.get(pk=event.pk)
        expected = hmac.new(settings.AUDIT_MAC_KEY.encode(), stored.hash.encode(), hashlib.sha256).hexdigest()
        assert stored.mac == expected


def append_by_sql(mac: str | None = None) -> AuditEvent:
    """What someone holding only SQL does: an event that follows the head, with the right seq,
    prev_hash and hash (all computable without any key), and a MAC they had to guess; the head
    moved along."""
    head = AuditChainHead.objects.get(pk=1)
    event = AuditEvent(
        seq=head.seq + 1,
        created_at=timezone.now(),
        actor_id=None,
        actor_username="system",
        action=audit.EVIDENCE_BASELINED,
        data={"rows": 1, "evidence": [{"row": "governance.policy:1", "sha256": "f" * 64}]},
        prev_hash=head.hash,
    )
    event.hash = audit.compute_hash(event.prev_hash, audit.event_payload(event))
    event.mac = mac if mac is not None else audit.compute_mac(event.hash, b"a guessed key")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO governance_auditevent (seq, created_at, actor_id, actor_username, action, target_type, "
            "target_id, target_repr, data, prev_hash, hash, mac) "
            "VALUES (%s, %s, NULL, %s, %s, '', '', '', %s, %s, %s, %s)",
            [
                event.seq,
                connection.ops.adapt_datetimefield_value(event.created_at),
                event.actor_username,
                event.action,
                json.dumps(event.data),
                event.prev_hash,
                event.hash,
                event.mac,
            ],
        )
        # (on PostgreSQL the insert's trigger has moved the head already: the same values again)
        cursor.execute("UPDATE governance_auditchainhead SET seq = %s, hash = %s WHERE id = 1", [event.seq, event.hash])
    return event


def test_an_event_appended_by_sql_with_a_correct_hash_but_no_valid_mac_fails_verification(data_scientist):
    make_history(data_scientist, 3)
    forged = append_by_sql()
    stored = AuditEvent.objects.get(seq=forged.seq)
    assert audit.compute_hash(stored.prev_hash, audit.event_payload(stored)) == stored.hash  # the hash is right
    result = audit.verify_chain()
    assert not result.ok and result.first_broken_seq == forged.seq
    named = f"event #{forged.seq} \\(compliance.evidence.baselined\\) does not carry a valid MAC"
    with pytest.raises(CommandError, match=named):
        call_command("verify_audit")
    # the application goes on appending after it (nothing is broken for good), and the forged
    # event is still the one named
    later = audit.record("test.event", actor=None, data={"i": "after"})
    assert later.prev_hash == forged.hash
    assert audit.verify_chain().first_broken_seq == forged.seq


def test_an_event_without_a_mac_fails_verification(data_scientist):
    if connection.vendor == "postgresql":  # (the database refuses it: tests/services/test_audit_chain_services.py)
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE governance_auditevent DISABLE TRIGGER governance_auditevent_follows_head")
    make_history(data_scientist, 2)
    forged = append_by_sql(mac="")
    message = audit.verify_chain().message
    assert message.startswith(f"event #{forged.seq} (compliance.evidence.baselined) does not carry a valid MAC")


def test_a_chain_rewritten_with_recomputed_hashes_fails_on_its_macs(data_scientist):
    events = make_history(data_scientist, 4)
    prev_hash = events[0].hash
    for event in AuditEvent.objects.filter(seq__gt=events[0].seq).order_by("seq"):
        if event.seq == events[1].seq:
            event.data = {"i": 99, "text": "rewritten"}
        event.prev_hash = prev_hash
        event.hash = audit.compute_hash(prev_hash, audit.event_payload(event))
        _raw(
            "UPDATE governance_auditevent SET data = %s, prev_hash = %s, hash = %s WHERE seq = %s",
            [json.dumps(event.data), event.prev_hash, event.hash, event.seq],
        )
        prev_hash = event.hash
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE governance_auditchainhead DISABLE TRIGGER USER")
        cursor.execute("UPDATE governance_auditchainhead SET hash = %s WHERE id = 1", [prev_hash])
    result = audit.verify_chain()
    assert not result.ok and result.first_broken_seq == events[1].seq
    assert "does not carry a valid MAC" in result.message


def test_verification_with_another_key_names_the_first_event(data_scientist, settings):
    make_history(data_scientist, 2)
    first = AuditEvent.objects.order_by("seq").first()
    settings.AUDIT_MAC_KEY = "not-the-key-the-trail-was-written-with"
    result = audit.verify_chain()
    assert not result.ok and result.first_broken_seq == first.seq
    assert "AUDIT_MAC_KEY is not the key the trail was written with" in result.message


def test_the_audit_mac_key_is_required_without_debug(data_scientist, settings):
    settings.AUDIT_MAC_KEY = ""
    settings.DEBUG = False
    with pytest.raises(Exception, match="AUDIT_MAC_KEY must be set when DEBUG=False"):
        audit.record("test.event", actor=None)


def test_the_development_key_is_generated_once_and_kept_private(settings, tmp_path, data_scientist):
    settings.AUDIT_MAC_KEY = ""
    settings.DEBUG = True
    settings.AUDIT_MAC_KEY_FILE = key_file = tmp_path / "var" / "audit-mac.key"
    event = audit.record("test.event", actor=None)
    key = key_file.read_text().strip()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert event.mac == hmac.new(key.encode(), event.hash.encode(), hashlib.sha256).hexdigest()


def test_verification_names_a_head_that_is_not_the_last_event(data_scientist):
    events = make_history(data_scientist, 2)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE governance_auditchainhead DISABLE TRIGGER USER")
        cursor.execute("UPDATE governance_auditchainhead SET hash = %s WHERE id = 1", ["e" * 64])
    result = audit.verify_chain()
    assert not result.ok
    last = events[-1]
    assert result.message == f"the chain head names event #{last.seq} with hash {'e' * 64}, the event has {last.hash}"
