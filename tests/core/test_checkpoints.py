"""Signed checkpoints are C2SP signed notes: checked here against an implementation of the note
format written in the test, and against the published example of Go's golang.org/x/mod/sumdb/note."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.checkpoints import (
    Checkpoint,
    CheckpointError,
    Signer,
    Verifier,
    append_note,
    open_checkpoint,
    open_note,
    parse_seed,
    read_log,
    sign_checkpoint,
    sign_note,
)

SEED = bytes(range(32))
CHECKPOINT = Checkpoint(
    origin="modelgov/audit.example.org",
    seq=57,
    head_hash="9f" * 32,
    seal_id=3,
    seal_root="5c" * 32,
    time=datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC),
)

# The example of golang.org/x/mod/sumdb/note (its doc comment and tests): Ed25519 is
# deterministic, so the same key and text must give the same note, byte for byte.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT
    + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def independent_open(note: str, vkey: str) -> str:
    """The signed-note format, written from the spec without the module under test: split at the
    last empty line, find the signature line whose name and key hash match the vkey, verify."""
    name, hash_hex, key_b64 = vkey.split("+", 2)
    typed_key = base64.b64decode(key_b64)
    assert typed_key[0] == 0x01 and len(typed_key) == 33
    expected_hash = hashlib.sha256(name.encode() + b"\n" + typed_key).digest()[:4]
    assert expected_hash.hex() == hash_hex
    split = note.rindex("\n\n")
    text, signature_lines = note[: split + 1], note[split + 2 :]
    assert signature_lines.endswith("\n")
    for line in signature_lines.splitlines():
        dash, line_name, blob = line.split(" ")
        assert dash == "\u2014"
        raw = base64.b64decode(blob)
        if line_name == name and raw[:4] == expected_hash:
            Ed25519PublicKey.from_public_bytes(typed_key[1:]).verify(raw[4:], text.encode())
            return text
    raise AssertionError("no signature line by this key")


def test_notes_match_the_go_reference_byte_for_byte() -> None:
    seed = base64.b64decode(GO_SKEY.split("+", 4)[4])[1:]
    signer = Signer("PeterNeumann", seed)
    assert signer.verifier.vkey == GO_VKEY
    assert sign_note(GO_TEXT, signer) == GO_NOTE
    assert open_note(GO_NOTE, Verifier.from_vkey(GO_VKEY).public_key, name="PeterNeumann") == GO_TEXT


def test_checkpoint_signature_verifies_with_an_independent_note_verifier() -> None:
    signer = Signer(CHECKPOINT.origin, SEED)
    note = sign_checkpoint(CHECKPOINT, signer)
    assert independent_open(note, signer.verifier.vkey) == CHECKPOINT.text()
    assert note == (
        "modelgov/audit.example.org\n"
        f"audit-chain 57 {'9f' * 32}\n"
        f"prediction-seal 3 {'5c' * 32}\n"
        "time 2026-03-01T12:30:05Z\n"
        "\n"
        f"\u2014 modelgov/audit.example.org {note.rsplit(' ', 1)[1]}"
    )
    assert open_checkpoint(note, signer.verifier.public_key) == Checkpoint(
        **{**CHECKPOINT.__dict__, "time": datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC)}
    )


def test_vkey_names_the_key_hash_of_its_name_and_public_key() -> None:
    verifier = Signer("modelgov/localhost", SEED).verifier
    name, key_hash, key = verifier.vkey.split("+", 2)
    raw = base64.b64decode(key)
    assert name == "modelgov/localhost" and raw[:1] == b"\x01" and raw[1:] == verifier.public_key
    assert key_hash == hashlib.sha256(b"modelgov/localhost\n\x01" + verifier.public_key).digest()[:4].hex()
    assert Verifier.from_vkey(verifier.vkey) == verifier
    with pytest.raises(CheckpointError, match="hash does not match"):
        Verifier.from_vkey(f"other+{key_hash}+{key}")


@pytest.mark.parametrize(
    "change",
    [
        ("audit-chain 57 ", "audit-chain 56 "),
        ("9f9f", "9f9e"),
        ("prediction-seal 3 ", "prediction-seal 4 "),
        ("T12:30:05Z", "T12:30:06Z"),
    ],
)
def test_a_changed_checkpoint_body_no_longer_verifies(change: tuple[str, str]) -> None:
    signer = Signer(CHECKPOINT.origin, SEED)
    forged = sign_checkpoint(CHECKPOINT, signer).replace(*change, 1)
    with pytest.raises(CheckpointError, match="does not verify"):
        open_checkpoint(forged, signer.verifier.public_key)
    with pytest.raises(InvalidSignature):
        independent_open(forged, signer.verifier.vkey)


def test_a_note_signed_by_another_key_is_refused() -> None:
    note = sign_checkpoint(CHECKPOINT, Signer(CHECKPOINT.origin, bytes(32)))
    with pytest.raises(CheckpointError, match="No signature by the configured key"):
        open_checkpoint(note, Signer(CHECKPOINT.origin, SEED).verifier.public_key)


def test_seed_is_read_from_hex_or_base64() -> None:
    assert parse_seed(SEED.hex()) == parse_seed(base64.b64encode(SEED).decode()) == SEED
    with pytest.raises(CheckpointError, match="32 bytes"):
        parse_seed("c2hvcnQ=")
    assert "0001020304" not in repr(Signer("modelgov/localhost", SEED))


def test_a_checkpoint_without_a_seal_says_none() -> None:
    empty = Checkpoint("modelgov/localhost", 0, "0" * 64, None, None, CHECKPOINT.time)
    assert "\nprediction-seal none\n" in empty.text()
    assert Checkpoint.parse(empty.text()).seal_id is None
    with pytest.raises(CheckpointError, match="Not a checkpoint"):
        Checkpoint.parse(empty.text().replace("audit-chain 0", "audit-chain x"))


def test_the_log_holds_notes_one_after_another_with_their_line_numbers(tmp_path: Path) -> None:
    signer = Signer(CHECKPOINT.origin, SEED)
    notes = [sign_checkpoint(Checkpoint(**{**CHECKPOINT.__dict__, "seq": seq}), signer) for seq in (1, 2, 3)]
    for note in notes:
        append_note(tmp_path, note)
    logged = list(read_log(tmp_path))
    assert [entry.note for entry in logged] == notes
    assert [entry.line for entry in logged] == [1, 8, 15]
    assert logged[1].where == "checkpoints.log line 8"
    for entry in logged:  # each note, cut out of the log, is exactly what a note verifier takes
        independent_open(entry.note, signer.verifier.vkey)
