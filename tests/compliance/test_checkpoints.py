"""Signed checkpoints written outside the database catch what the hash chain alone cannot: a
cut-off tail, and a chain rewritten consistently by someone with database access."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.utils import timezone

from compliance import checkpoints
from compliance.tasks import write_checkpoint_task
from core import audit
from core.checkpoints import ALG_COSIGNATURE_V1, LOG_NAME, Checkpoint, CheckpointError, Signer, open_cosignature
from core.models import AuditChainHead, AuditEvent
from serving.models import PredictionSeal
from tests.conftest import tamper
from tests.core.test_checkpoints import independent_cosignature_open, independent_open

pytestmark = pytest.mark.django_db

SEED = hashlib.sha256(b"checkpoint test key").digest()
ORIGIN = "modelgov/test.example.org"


@pytest.fixture
def checkpoint_dir(settings: Any, tmp_path: Path) -> Path:
    folder = tmp_path / "checkpoints"
    settings.CHECKPOINT_DIR = folder
    settings.CHECKPOINT_SIGNING_KEY = SEED.hex()
    settings.CHECKPOINT_ORIGIN = ORIGIN
    settings.CHECKPOINT_KEY_FILE = tmp_path / "never-used.key"
    return folder


def make_history(n: int = 5) -> list[AuditEvent]:
    return [audit.record("test.event", actor=None, data={"i": i, "text": "é"}) for i in range(n)]


def run(*args: str) -> str:
    """The command's output; its failure (CommandError, or SystemExit from the command line) as text."""
    from io import StringIO

    out = StringIO()
    try:
        call_command(*args, stdout=out)
    except (CommandError, SystemExit) as exc:
        raise AssertionError(str(exc)) from None
    return out.getvalue()


def verify_fails(folder: Path) -> str:
    with pytest.raises(CommandError) as failure:
        call_command("verify_audit", "--checkpoints", str(folder))
    return str(failure.value)


def notes_in(folder: Path) -> list[str]:
    """The log cut into notes by hand: text block, empty line, signature block, empty line."""
    blocks = (folder / LOG_NAME).read_text(encoding="utf-8").rstrip("\n").split("\n\n")
    return [f"{text}\n\n{signatures}\n" for text, signatures in zip(blocks[::2], blocks[1::2], strict=True)]


def delete_events_after(seq: int) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE governance_auditevent DISABLE TRIGGER USER")
        try:
            cursor.execute("DELETE FROM governance_auditevent WHERE seq > %s", [seq])
        finally:
            if connection.vendor == "postgresql":
                cursor.execute("ALTER TABLE governance_auditevent ENABLE TRIGGER USER")


def rewrite_chain_from(seq: int, data: dict[str, Any]) -> None:
    """What an attacker with database access AND the audit MAC key (the application's host) does so
    that the chain itself still verifies: change one event, recompute every hash and MAC from there
    on, and move the head. (Without the key the MACs fail: tests/core/test_audit.py.) The signed
    checkpoints are what still catches this."""
    prev_hash = AuditEvent.objects.get(seq=seq - 1).hash if seq > 1 else audit.GENESIS_HASH
    for event in AuditEvent.objects.filter(seq__gte=seq).order_by("seq"):
        if event.seq == seq:
            event.data = data
        event.prev_hash = prev_hash
        event.hash = audit.compute_hash(prev_hash, audit.event_payload(event))
        event.mac = audit.compute_mac(event.hash)
        tamper(AuditEvent, {"pk": event.pk}, data=event.data, prev_hash=event.prev_hash, hash=event.hash, mac=event.mac)
        prev_hash = event.hash
    tamper(AuditChainHead, {"pk": 1}, hash=prev_hash)


def test_checkpoint_command_appends_a_note_signed_over_the_chain_head(checkpoint_dir: Path) -> None:
    events = make_history()
    output = run("checkpoint")
    [note] = notes_in(checkpoint_dir)
    assert note in output
    vkey = Signer(ORIGIN, SEED).verifier.vkey
    text = independent_open(note, vkey)
    assert text.startswith(f"{ORIGIN}\naudit-chain {events[-1].seq} {events[-1].hash}\nprediction-seal none\ntime ")

    newer = audit.record("test.event", actor=None, data={"i": 5})
    run("checkpoint")
    first, second = notes_in(checkpoint_dir)
    assert first == note
    assert f"audit-chain {newer.seq} {newer.hash}\n" in independent_open(second, vkey)


def test_public_key_prints_the_verifier_key(checkpoint_dir: Path) -> None:
    vkey = run("checkpoint", "--public-key").strip()
    name, key_hash, key = vkey.split("+", 2)
    public = base64.b64decode(key)[1:]
    assert name == ORIGIN
    assert key_hash == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + public).digest()[:4].hex()
    assert vkey == Signer(ORIGIN, SEED).verifier.vkey
    assert not (checkpoint_dir / LOG_NAME).exists()


def test_checkpoint_names_the_latest_seal_and_its_root(checkpoint_dir: Path) -> None:
    make_history(2)
    empty_root = hashlib.sha256(b"").hexdigest()  # an RFC 6962 tree of no records
    seal = PredictionSeal.objects.create(root=empty_root, tree_size=0, first_record=0, last_record=0)
    data = {"root": empty_root, "tree_size": 0, "first_record": 0, "last_record": 0, "changed_before_sealing": []}
    seal.audit_seq = audit.record(audit.PREDICTIONS_SEALED, actor=None, target=seal, data=data).seq
    seal.save(update_fields=["audit_seq"])
    written = checkpoints.write_checkpoint()
    assert written.checkpoint.seal_id == seal.pk and written.checkpoint.seal_root == empty_root
    assert f"\nprediction-seal {seal.pk} {empty_root}\n" in written.note
    assert "Checkpoints OK: 1 signed checkpoints verified" in run("verify_audit", "--checkpoints", str(checkpoint_dir))

    PredictionSeal.objects.filter(pk=seal.pk).delete()
    run("verify_audit")  # the seals that are left still verify
    message = verify_fails(checkpoint_dir)
    assert f"prediction seal #{seal.pk} now has no such seal" in message


def test_deleting_the_newest_events_fails_against_the_checkpoint(checkpoint_dir: Path) -> None:
    events = make_history(5)
    run("checkpoint")
    last, kept = events[-1].seq, events[2].seq
    delete_events_after(kept)
    message = verify_fails(checkpoint_dir)
    assert f"Audit trail BROKEN: the chain ends at #{kept} but its head says #{last}" in message
    assert f"checkpoints.log line 1 (audit-chain #{last}" in message
    assert f"event #{last} is no longer in the audit trail (it now ends at #{kept})" in message


def test_a_cleanly_truncated_chain_passes_alone_but_not_against_the_checkpoint(checkpoint_dir: Path) -> None:
    make_history(3)
    run("checkpoint")  # line 1
    kept, *_, last = make_history(3)
    run("checkpoint")  # line 8
    delete_events_after(kept.seq)
    tamper(AuditChainHead, {"pk": 1}, seq=kept.seq, hash=kept.hash)  # (a DBA lifts the forward-only trigger)
    assert f"Audit trail OK: {kept.seq} events verified" in run("verify_audit")
    message = verify_fails(checkpoint_dir)
    assert message.startswith(f"Checkpoints BROKEN: checkpoint at checkpoints.log line 8 (audit-chain #{last.seq}")
    assert f"event #{last.seq} is no longer in the audit trail (it now ends at #{kept.seq})" in message


def test_a_consistently_rewritten_chain_passes_alone_but_not_against_the_checkpoint(checkpoint_dir: Path) -> None:
    events = make_history(5)
    run("checkpoint")
    rewrite_chain_from(events[1].seq, {"i": 99, "text": "rewritten"})
    assert audit.verify_chain().ok
    assert f"Audit trail OK: {events[-1].seq} events verified" in run("verify_audit")
    message = verify_fails(checkpoint_dir)
    assert f"Checkpoints BROKEN: checkpoint at checkpoints.log line 1 (audit-chain #{events[-1].seq}" in message
    assert f"the checkpoint signed {events[-1].hash}: the chain was rewritten" in message


def test_an_edited_checkpoint_fails_its_signature(checkpoint_dir: Path) -> None:
    last = make_history(5)[-1].seq
    run("checkpoint")
    run("checkpoint")
    log = checkpoint_dir / LOG_NAME
    lines = log.read_text(encoding="utf-8").split("\n")
    assert lines[8].startswith(f"audit-chain {last} ")  # the second note's second line
    lines[8] = lines[8].replace(f"audit-chain {last} ", f"audit-chain {last - 1} ")
    log.write_text("\n".join(lines), encoding="utf-8")
    message = verify_fails(checkpoint_dir)
    assert "checkpoint at checkpoints.log line 8: The signature by modelgov/test.example.org does not verify" in message


def test_a_checkpoint_signed_with_another_key_is_refused(checkpoint_dir: Path, settings: Any) -> None:
    make_history(2)
    settings.CHECKPOINT_SIGNING_KEY = base64.b64encode(bytes(32)).decode()
    run("checkpoint")
    settings.CHECKPOINT_SIGNING_KEY = SEED.hex()
    assert "No signature by the configured key" in verify_fails(checkpoint_dir)


def test_verifying_without_a_checkpoint_log_fails(checkpoint_dir: Path) -> None:
    make_history(1)
    assert f"no checkpoint log: {checkpoint_dir / LOG_NAME} does not exist" in verify_fails(checkpoint_dir)


def test_development_key_is_generated_once_and_kept_private(checkpoint_dir: Path, settings: Any, tmp_path: Path):
    settings.CHECKPOINT_SIGNING_KEY = ""
    settings.CHECKPOINT_KEY_FILE = key_file = tmp_path / "var" / "checkpoint-signing.key"
    settings.DEBUG = False
    with pytest.raises(CommandError, match="CHECKPOINT_SIGNING_KEY must be set when DEBUG=False"):
        call_command("checkpoint")
    settings.DEBUG = True
    make_history(2)
    vkey = run("checkpoint", "--public-key").strip()
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    run("checkpoint")
    assert run("checkpoint", "--public-key").strip() == vkey
    independent_open(notes_in(checkpoint_dir)[0], vkey)
    assert "Checkpoints OK" in run("verify_audit", "--checkpoints", str(checkpoint_dir))


def test_the_periodic_task_writes_a_checkpoint(checkpoint_dir: Path, eager_tasks: None) -> None:
    last = make_history(4)[-1].seq
    assert write_checkpoint_task.delay().get() == last
    note = notes_in(checkpoint_dir)[0]
    assert Checkpoint.parse(independent_open(note, Signer(ORIGIN, SEED).verifier.vkey)).seq == last
    schedule = django_settings.CELERY_BEAT_SCHEDULE["write-checkpoint"]
    assert schedule == {
        "task": "compliance.tasks.write_checkpoint_task",
        "schedule": django_settings.CHECKPOINT_INTERVAL_SECONDS,
    }


def test_verify_now_says_when_no_checkpoint_was_written(
    checkpoint_dir: Path, auditor: Any, client: Client, verify_now: Any
) -> None:
    client.force_login(auditor)
    page = verify_now()
    assert 'id="checkpoint-result" data-ok="none"' in page and "No checkpoint has been written" in page


def test_verify_now_shows_the_latest_checkpoint_the_chain_still_holds(
    checkpoint_dir: Path, auditor: Any, client: Client, verify_now: Any
) -> None:
    client.force_login(auditor)
    make_history(3)
    checkpoints.write_checkpoint()
    audit.record("test.event", actor=None, data={"i": 3})
    written = checkpoints.write_checkpoint().checkpoint
    page = verify_now()
    assert 'id="checkpoint-result" data-ok="true"' in page
    assert "the audit trail still contains it." in page
    assert f"audit chain #{written.seq} <code" in page and written.head_hash in page
    assert f"{written.time:%Y-%m-%d %H:%M:%S} UTC" in page and "checkpoints.log line 8" in page
    assert "No prediction seal yet." in page


def test_verify_now_shows_a_rewritten_chain_against_the_latest_checkpoint(
    checkpoint_dir: Path, auditor: Any, client: Client, verify_now: Any
) -> None:
    client.force_login(auditor)
    events = make_history(3)
    written = checkpoints.write_checkpoint().checkpoint
    rewrite_chain_from(events[1].seq, {"i": 42})
    chain = audit.verify_chain()
    assert chain.ok  # the chain alone cannot tell
    page = verify_now()
    # the chain as the worker verified it: these events and the job's own "started" event
    assert f"Audit chain: {chain.events_checked + 1} events verified, chain intact" in page
    assert 'id="checkpoint-result" data-ok="false"' in page
    assert "the audit trail NO LONGER matches it." in page
    assert f"event #{written.seq} now has hash" in page and "the chain was rewritten" in page


# --- the witness, the public keys and the interval ---------------------------------
def witness_notes(folder: Path) -> list[str]:
    blocks = (folder.with_name(f"{folder.name}-witness") / "cosigned.log").read_text().rstrip("\n").split("\n\n")
    return [f"{text}\n\n{signatures}\n" for text, signatures in zip(blocks[::2], blocks[1::2], strict=True)]


def cut_log(folder: Path, keep: int) -> None:
    """What someone with the host's shell does: keep the first `keep` notes of checkpoints.log."""
    (folder / LOG_NAME).write_text("".join(note + "\n" for note in notes_in(folder)[:keep]), encoding="utf-8")


def test_each_checkpoint_is_cosigned_by_the_witness_in_its_own_directory(checkpoint_dir: Path) -> None:
    make_history(3)
    first = checkpoints.write_checkpoint()
    second = checkpoints.write_checkpoint()
    witness = checkpoint_dir.with_name("checkpoints-witness")
    assert first.cosigned.startswith(first.note) and witness_notes(checkpoint_dir) == [first.cosigned, second.cosigned]
    assert (witness / "cosigned.log").is_file() and not (checkpoint_dir / "cosigned.log").exists()
    key = Signer(django_settings.CHECKPOINT_WITNESS_NAME, bytes.fromhex("77" * 32), ALG_COSIGNATURE_V1).verifier
    text, timestamp = independent_cosignature_open(second.cosigned, key.name, key.public_key)
    assert text == second.checkpoint.text() and abs(timestamp - timezone.now().timestamp()) < 60
    vkey = run("checkpoint", "--witness-public-key").strip()
    assert vkey == key.vkey and vkey.split("+")[0] == django_settings.CHECKPOINT_WITNESS_NAME
    assert "the witness cosigned 2, all still in the log" in run("verify_audit", "--checkpoints", str(checkpoint_dir))


def test_verifying_needs_only_the_public_keys(checkpoint_dir: Path, settings: Any) -> None:
    make_history(2)
    run("checkpoint")
    log_vkey = run("checkpoint", "--public-key").strip()
    witness_vkey = run("checkpoint", "--witness-public-key").strip()
    settings.DEBUG = False
    settings.CHECKPOINT_SIGNING_KEY = settings.CHECKPOINT_WITNESS_KEY = ""  # the verifier holds no private key
    assert "No checkpoint public key: set CHECKPOINT_PUBLIC_KEY" in verify_fails(checkpoint_dir)
    settings.CHECKPOINT_PUBLIC_KEY = log_vkey
    assert "No witness public key: set CHECKPOINT_WITNESS_PUBLIC_KEY" in verify_fails(checkpoint_dir)
    settings.CHECKPOINT_WITNESS_PUBLIC_KEY = witness_vkey
    assert "Checkpoints OK: 1 signed checkpoints verified" in run("verify_audit", "--checkpoints", str(checkpoint_dir))
    assert run("checkpoint", "--public-key").strip() == log_vkey  # printed from the public key alone
    with pytest.raises(CommandError, match="CHECKPOINT_SIGNING_KEY must be set when DEBUG=False"):
        call_command("checkpoint")
    settings.CHECKPOINT_WITNESS_PUBLIC_KEY = Signer("w", bytes(32), ALG_COSIGNATURE_V1).verifier.vkey
    assert "No cosignature by the witness w" in verify_fails(checkpoint_dir)


def test_an_emptied_checkpoint_log_fails_naming_what_the_witness_saw(checkpoint_dir: Path) -> None:
    events = make_history(3)
    run("checkpoint")
    run("checkpoint")
    (checkpoint_dir / LOG_NAME).write_text("", encoding="utf-8")
    message = verify_fails(checkpoint_dir)
    assert message.startswith(
        f"Checkpoints BROKEN: the witness cosigned the checkpoint of audit-chain #{events[-1].seq}"
    )
    assert (
        "(cosigned.log line 1), and checkpoints.log no longer holds it: the log was cut, emptied or edited" in message
    )
    assert "(it holds 0 checkpoints, the witness 2)" in message


def test_a_log_without_its_newest_note_fails_naming_it(checkpoint_dir: Path) -> None:
    make_history(2)
    run("checkpoint")
    newest = audit.record("test.event", actor=None, data={"i": "newest"})
    run("checkpoint")
    cut_log(checkpoint_dir, keep=1)
    assert f"Audit trail OK: {newest.seq} events verified" in run("verify_audit")
    message = verify_fails(checkpoint_dir)
    assert f"the witness cosigned the checkpoint of audit-chain #{newest.seq} at " in message
    assert "(cosigned.log line 9), and checkpoints.log no longer holds it" in message
    assert "(it holds 1 checkpoint, the witness 2)" in message


def test_a_log_emptied_in_both_places_fails(checkpoint_dir: Path) -> None:
    make_history(2)
    run("checkpoint")
    (checkpoint_dir / LOG_NAME).write_text("", encoding="utf-8")
    (checkpoint_dir.with_name("checkpoints-witness") / "cosigned.log").write_text("", encoding="utf-8")
    assert "checkpoints.log holds no checkpoint (and the witness has cosigned none)" in verify_fails(checkpoint_dir)


def test_an_edited_copy_in_the_witness_directory_fails(checkpoint_dir: Path) -> None:
    make_history(2)
    run("checkpoint")
    copy = checkpoint_dir.with_name("checkpoints-witness") / "cosigned.log"
    lines = copy.read_text().split("\n")
    assert lines[2] == "prediction-seal none"
    lines[2] = "prediction-seal 1 " + "0" * 64
    copy.write_text("\n".join(lines))
    assert "witness's checkpoint at cosigned.log line 1: The cosignature by" in verify_fails(checkpoint_dir)


def test_a_checkpoint_older_than_twice_the_interval_fails(
    checkpoint_dir: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_history(2)
    written = checkpoints.write_checkpoint().checkpoint
    settings.CHECKPOINT_INTERVAL_SECONDS = 60
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(seconds=100))
    assert "the newest is 1" in run("verify_audit", "--checkpoints", str(checkpoint_dir))  # 100 s: within 120 s
    monkeypatch.setattr(timezone, "now", lambda: written.time + timedelta(seconds=125))
    message = verify_fails(checkpoint_dir)
    assert f"the newest checkpoint (checkpoint at checkpoints.log line 1 (audit-chain #{written.seq}" in message
    assert "is 125 s old, more than twice the checkpoint interval of 60 s: checkpoints stopped" in message


def test_the_interval_defaults_to_a_minute() -> None:
    from tests.config.test_deploy import production_env, setting

    assert setting("CHECKPOINT_INTERVAL_SECONDS", production_env()) == "60"


def test_the_witness_refuses_a_checkpoint_that_goes_back(checkpoint_dir: Path) -> None:
    events = make_history(4)
    run("checkpoint")
    delete_events_after(events[1].seq)
    tamper(AuditChainHead, {"pk": 1}, seq=events[1].seq, hash=events[1].hash)
    with pytest.raises(CheckpointError, match=f"The witness refuses the checkpoint of audit-chain #{events[1].seq}"):
        checkpoints.write_checkpoint()
    [kept] = witness_notes(checkpoint_dir)
    assert (
        open_cosignature(kept, checkpoints.witness_public_key())[0]
        .split("\n")[1]
        .startswith(f"audit-chain {events[-1].seq} ")
    )


def test_the_witness_directory_is_a_second_place(checkpoint_dir: Path, settings: Any, tmp_path: Path) -> None:
    settings.CHECKPOINT_WITNESS_DIR = str(checkpoint_dir)
    with pytest.raises(CommandError, match="CHECKPOINT_WITNESS_DIR must not be the checkpoint directory"):
        call_command("checkpoint")
    settings.CHECKPOINT_WITNESS_DIR = str(tmp_path / "elsewhere")
    make_history(1)
    run("checkpoint")
    assert (tmp_path / "elsewhere" / "cosigned.log").is_file()
    assert "Checkpoints OK" in run("verify_audit", "--checkpoints", str(checkpoint_dir))
    settings.CHECKPOINT_WITNESS_DIR = ""  # a witness that has seen nothing: the newest is not vouched for
    message = verify_fails(checkpoint_dir)
    assert "the newest checkpoint (checkpoint at checkpoints.log line 1 (audit-chain #" in message
    assert "was not cosigned by the witness in" in message and "(it has none): the witness is down" in message


def test_the_seeded_demo_ends_with_a_witnessed_checkpoint_that_verifies(
    checkpoint_dir: Path, eager_tasks: None
) -> None:
    """`seed_demo` then `verify_audit --checkpoints`: the demo writes its checkpoint at its end, so
    the freshly seeded demo is neither without a checkpoint nor stale."""
    from io import StringIO

    out = StringIO()
    call_command("seed_demo", stdout=out)
    last = AuditEvent.objects.order_by("-seq").first()
    assert f"Checkpoint of audit-chain #{last.seq} written to {checkpoint_dir / LOG_NAME}." in out.getvalue()
    result = checkpoints.verify_checkpoints(checkpoint_dir)
    assert result.ok, result.message
    assert result.latest.seq == last.seq and len(witness_notes(checkpoint_dir)) == 1
