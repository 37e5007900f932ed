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
    ALG_COSIGNATURE_V1,
    Checkpoint,
    CheckpointError,
    Signer,
    Verifier,
    append_note,
    cosign_note,
    open_checkpoint,
    open_cosignature,
    open_note,
    parse_seed,
    read_log,
    sign_checkpoint,
    sign_note,
    split_note,
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


# --- cosignatures (c2sp.org/tlog-cosignature) -------------------------------------------------
WITNESS_SEED = bytes(range(100, 132))
# The example of the specification: a checkpoint cosigned by witness.example.com/w1, whose
# signed message it gives as "cosignature/v1\ntime 1679315147\n" followed by the note's text.
C2SP_EXAMPLE = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
    "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+z"
    "yWE+xeMcTOAYQ8=\n"
    "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5"
    "nNo0xUe+mbIUBkBIfZ+qnA==\n"
)


def independent_cosignature_open(note: str, name: str, public_key: bytes) -> tuple[str, int]:
    """tlog-cosignature's Ed25519 "cosignature/v1", written from the spec: key ID with the 0x04
    algorithm byte, then a big-endian u64 timestamp, then the signature over two header lines and
    the note's text."""
    key_id = hashlib.sha256(name.encode() + b"\n\x04" + public_key).digest()[:4]
    split = note.rindex("\n\n")
    text = note[: split + 1]
    for line in note[split + 2 :].splitlines():
        _, line_name, blob = line.split(" ")
        raw = base64.b64decode(blob)
        if line_name == name and raw[:4] == key_id:
            timestamp = int.from_bytes(raw[4:12], "big")
            message = b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + text.encode()
            Ed25519PublicKey.from_public_bytes(public_key).verify(raw[12:], message)
            return text, timestamp
    raise AssertionError("no cosignature line by this witness")


def test_the_specifications_example_cosignature_parses_as_key_id_timestamp_and_signature() -> None:
    text, signatures = split_note(C2SP_EXAMPLE)
    witness = signatures[1]
    assert witness.name == "witness.example.com/w1" and len(witness.signature) == 8 + 64
    assert int.from_bytes(witness.signature[:8], "big") == 1679315147  # the spec's "time 1679315147"
    with pytest.raises(CheckpointError, match="No cosignature by the witness"):
        open_cosignature(C2SP_EXAMPLE, Signer("witness.example.com/w1", WITNESS_SEED, ALG_COSIGNATURE_V1).verifier)


def test_a_cosignature_verifies_with_an_independent_implementation_and_keeps_the_log_signature() -> None:
    log = Signer(CHECKPOINT.origin, SEED)
    witness = Signer("witness/audit.example.org", WITNESS_SEED, ALG_COSIGNATURE_V1)
    note = sign_checkpoint(CHECKPOINT, log)
    cosigned = cosign_note(note, witness, 1_780_000_000)
    assert cosigned.startswith(note) and cosigned.count("\u2014 ") == 2
    assert independent_cosignature_open(cosigned, witness.name, witness.verifier.public_key) == (
        CHECKPOINT.text(),
        1_780_000_000,
    )
    assert open_cosignature(cosigned, witness.verifier) == (CHECKPOINT.text(), 1_780_000_000)
    # the log's own signature still verifies, by any note verifier: the witness's line is ignored
    assert independent_open(cosigned, log.verifier.vkey) == CHECKPOINT.text()
    assert open_checkpoint(cosigned, log.verifier.public_key).seq == CHECKPOINT.seq


def test_a_changed_cosignature_or_body_no_longer_verifies() -> None:
    witness = Signer("witness/audit.example.org", WITNESS_SEED, ALG_COSIGNATURE_V1)
    cosigned = cosign_note(sign_checkpoint(CHECKPOINT, Signer(CHECKPOINT.origin, SEED)), witness, 1_780_000_000)
    with pytest.raises(CheckpointError, match="cosignature by witness/audit.example.org does not verify"):
        open_cosignature(cosigned.replace("audit-chain 57 ", "audit-chain 58 "), witness.verifier)
    line = cosigned.splitlines()[-1]
    raw = bytearray(base64.b64decode(line.rsplit(" ", 1)[1]))
    raw[11] ^= 1  # one second later: the timestamp is signed too
    moved = cosigned.replace(line, f"{line.rsplit(' ', 1)[0]} {base64.b64encode(bytes(raw)).decode()}")
    with pytest.raises(CheckpointError, match="does not verify"):
        open_cosignature(moved, witness.verifier)
    other = Signer("witness/audit.example.org", bytes(32), ALG_COSIGNATURE_V1)
    with pytest.raises(CheckpointError, match="No cosignature by the witness"):
        open_cosignature(cosigned, other.verifier)


def test_a_witness_key_is_a_cosignature_key_and_nothing_else() -> None:
    witness = Signer("witness/localhost", WITNESS_SEED, ALG_COSIGNATURE_V1).verifier
    name, key_hash, key = witness.vkey.split("+", 2)
    assert base64.b64decode(key)[:1] == b"\x04"
    assert key_hash == hashlib.sha256(b"witness/localhost\n\x04" + witness.public_key).digest()[:4].hex()
    assert Verifier.from_vkey(witness.vkey, ALG_COSIGNATURE_V1) == witness
    with pytest.raises(CheckpointError, match="Not an Ed25519 verifier key"):
        Verifier.from_vkey(witness.vkey)  # a log key is 0x01
    with pytest.raises(CheckpointError, match="cosignature"):
        Verifier.from_vkey(Signer("modelgov/localhost", SEED).verifier.vkey, ALG_COSIGNATURE_V1)
    with pytest.raises(CheckpointError, match="does not sign notes"):
        sign_note("text\n", Signer("witness/localhost", WITNESS_SEED, ALG_COSIGNATURE_V1))
    with pytest.raises(CheckpointError, match="needs a witness key"):
        cosign_note(sign_note("text\n", Signer("modelgov/localhost", SEED)), Signer("w", SEED), 1)
