"""Signed checkpoints on PostgreSQL: the append-only triggers stop the application from cutting the
chain; someone who lifts them (database access) is caught by the checkpoints. Checkpoints written
while other connections append events each name a head that is really in the chain."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from compliance import checkpoints
from core import audit
from core.checkpoints import read_log
from core.models import AuditChainHead, AuditEvent
from tests.compliance.test_checkpoints import (
    checkpoint_dir,  # noqa: F401 (a fixture)
    delete_events_after,
    make_history,
    rewrite_chain_from,
    run,
    verify_fails,
)
from tests.conftest import tamper


@pytest.mark.django_db
def test_a_cut_tail_is_refused_and_once_forced_is_named_by_the_checkpoint(checkpoint_dir: Path) -> None:  # noqa: F811
    events = make_history(5)
    run("checkpoint")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(seq__gt=events[2].seq).delete()
    assert AuditEvent.objects.filter(seq=events[-1].seq).exists()

    delete_events_after(events[2].seq)  # the triggers lifted, as someone with database access can
    with pytest.raises(DatabaseError, match="only moves forward"), transaction.atomic():
        AuditChainHead.objects.filter(pk=1).update(seq=events[2].seq, hash=events[2].hash)
    tamper(AuditChainHead, {"pk": 1}, seq=events[2].seq, hash=events[2].hash)  # the head's trigger lifted too
    assert "Audit trail OK" in run("verify_audit")
    message = verify_fails(checkpoint_dir)
    assert f"checkpoint at checkpoints.log line 1 (audit-chain #{events[-1].seq}" in message
    assert f"event #{events[-1].seq} is no longer in the audit trail (it now ends at #{events[2].seq})" in message


@pytest.mark.django_db
def test_a_consistently_rewritten_chain_is_named_by_the_checkpoint(checkpoint_dir: Path) -> None:  # noqa: F811
    events = make_history(5)
    run("checkpoint")
    rewrite_chain_from(events[0].seq, {"i": -1, "text": "never happened"})
    assert audit.verify_chain().ok
    message = verify_fails(checkpoint_dir)
    assert f"(audit-chain #{events[-1].seq}" in message and "the chain was rewritten" in message


def test_checkpoints_taken_while_events_are_appended_all_hold(
    committed_db: None,
    checkpoint_dir: Path,  # noqa: F811
    settings: Any,
) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(5)

    def work(call: Any, times: int) -> None:
        try:
            barrier.wait()
            for _ in range(times):
                call()
        except BaseException as exc:  # noqa: BLE001 (asserted on below)
            errors.append(exc)
        finally:
            connection.close()

    def record() -> None:
        with transaction.atomic():
            audit.record("test.event", actor=None, data={"thread": threading.get_ident()})

    threads = [threading.Thread(target=work, args=(record, 25)) for _ in range(3)]
    threads += [threading.Thread(target=work, args=(checkpoints.write_checkpoint, 15)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert len(list(read_log(checkpoint_dir))) == 30
    call_command("verify_audit", "--checkpoints", str(checkpoint_dir))
    assert checkpoints.verify_checkpoints(checkpoint_dir).checked == 30
