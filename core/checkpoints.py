"""Signed checkpoints of the audit trail as C2SP signed notes (https://c2sp.org/signed-note),
signed with Ed25519: the same envelope transparency-log checkpoints use, so any note verifier
(Go's golang.org/x/mod/sumdb/note, sigsum, the Rust signed_note crate) checks them with the
vkey that `manage.py checkpoint --public-key` prints.

A note is its text (lines ending in "\\n"), an empty line, then signature lines
"— <key name> <base64(key hash || signature)>\\n", key hash = SHA-256(name || "\\n" || 0x01 ||
public key)[:4]. The text of a checkpoint (body) is:

    <origin>
    audit-chain <head seq> <head hash, hex>
    prediction-seal <seal id> <Merkle root, hex>     (or "prediction-seal none")
    time <UTC, ISO 8601 to the second, Z>

A witness (its own Ed25519 key and its own directory) cosigns each checkpoint the log signs, in
C2SP's tlog-cosignature format (https://c2sp.org/tlog-cosignature, "cosignature/v1"): one more
signature line "— <witness name> <base64(key id || u64 big-endian timestamp || signature)>", key
id = SHA-256(name || "\\n" || 0x04 || public key)[:4], the signature over "cosignature/v1\\n",
"time <timestamp>\\n" and the checkpoint's text. The witness keeps every note it cosigned: a log
cut or emptied behind it no longer holds what the witness saw.

Pure code: no ORM. Gathering the values is compliance's job (core cannot see the seals)."""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from core.errors import DomainError

ALG_ED25519 = b"\x01"
ALG_COSIGNATURE_V1 = b"\x04"  # an Ed25519 timestamped cosignature (tlog-cosignature)
COSIGNATURE_HEADER = "cosignature/v1\n"
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space
LOG_NAME = "checkpoints.log"


class CheckpointError(DomainError):
    """A checkpoint that cannot be written, read or trusted (bad key, malformed note, bad signature)."""

    code = "checkpoint_invalid"
    status = 400


def check_name(name: str) -> str:
    """Key names and origins: non-empty, no Unicode space, no "+" (the signed-note rule)."""
    if not name or "+" in name or any(ch.isspace() for ch in name):
        raise CheckpointError(f"{name!r} is not a valid key name (non-empty, no spaces, no '+').")
    return name


def key_hash(name: str, public_key: bytes, alg: bytes = ALG_ED25519) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + alg + public_key).digest()[:4]


# --- keys -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verifier:
    name: str
    public_key: bytes  # 32 raw bytes
    alg: bytes = ALG_ED25519  # or ALG_COSIGNATURE_V1: a witness's key

    @property
    def key_hash(self) -> bytes:
        return key_hash(self.name, self.public_key, self.alg)

    @property
    def vkey(self) -> str:
        """The verifier key text note tools take: <name>+<hex key hash>+<base64(alg || key)>."""
        encoded = base64.b64encode(self.alg + self.public_key).decode()
        return f"{self.name}+{self.key_hash.hex()}+{encoded}"

    @classmethod
    def from_vkey(cls, vkey: str, alg: bytes = ALG_ED25519) -> Verifier:
        name, sep, rest = vkey.strip().partition("+")
        hash_hex, sep2, encoded = rest.partition("+")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raw = b""
        if not (sep and sep2) or len(raw) != 33 or raw[:1] != alg:
            kind = "Ed25519 verifier" if alg == ALG_ED25519 else "Ed25519 cosignature (0x04) verifier"
            raise CheckpointError(f"Not an {kind} key (<name>+<hash>+<base64 key>).")
        verifier = cls(check_name(name), raw[1:], alg)
        if verifier.key_hash.hex() != hash_hex.lower():
            raise CheckpointError("The verifier key's hash does not match its name and key.")
        return verifier

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class Signer:
    name: str
    seed: bytes  # the 32-byte Ed25519 private key
    alg: bytes = ALG_ED25519  # or ALG_COSIGNATURE_V1: a witness's key

    def __post_init__(self) -> None:
        check_name(self.name)
        if len(self.seed) != 32:
            raise CheckpointError("An Ed25519 private key is 32 bytes.")

    def __repr__(self) -> str:  # never print the private key in a traceback or a log line
        return f"Signer(name={self.name!r}, key hash {self.verifier.key_hash.hex()})"

    @classmethod
    def generate(cls, name: str, alg: bytes = ALG_ED25519) -> Signer:
        seed = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return cls(name, seed, alg)

    @property
    def verifier(self) -> Verifier:
        public = Ed25519PrivateKey.from_private_bytes(self.seed).public_key()
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return Verifier(self.name, raw, self.alg)

    def sign(self, message: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)


def parse_seed(value: str, what: str = "The checkpoint signing key") -> bytes:
    """A private key seed given as 64 hex digits or as base64 of its 32 bytes."""
    value = value.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", value):
        return bytes.fromhex(value)
    try:
        seed = base64.b64decode(value, validate=True)
    except binascii.Error:
        seed = b""
    if len(seed) != 32:
        raise CheckpointError(f"{what} must be 32 bytes, as 64 hex digits or base64.")
    return seed


# --- notes ------------------------------------------------------------------------------------
def _check_text(text: str) -> None:
    if not text.endswith("\n") or "\n\n" in text:
        raise CheckpointError("A note's text is non-empty lines, each ending in a newline.")
    if any(ord(ch) < 0x20 and ch != "\n" for ch in text):
        raise CheckpointError("A note's text may not hold control characters.")


def sign_note(text: str, signer: Signer) -> str:
    _check_text(text)
    if signer.alg != ALG_ED25519:
        raise CheckpointError("A witness's key cosigns (cosign_note); it does not sign notes.")
    signature = signer.sign(text.encode())
    encoded = base64.b64encode(signer.verifier.key_hash + signature).decode()
    return f"{text}\n{SIGNATURE_PREFIX}{signer.name} {encoded}\n"


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_hash: bytes
    signature: bytes


def split_note(note: str) -> tuple[str, list[NoteSignature]]:
    """The text and the signature lines, as note verifiers split them (at the last empty line)."""
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise CheckpointError("Not a signed note: no empty line before the signature lines.")
    text, block = note[: split + 1], note[split + 2 :]
    _check_text(text)
    signatures = []
    for line in block.splitlines():
        name, _, encoded = line.removeprefix(SIGNATURE_PREFIX).partition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raw = b""
        if not line.startswith(SIGNATURE_PREFIX) or len(raw) < 5 or " " in encoded:
            raise CheckpointError(f"Malformed signature line: {line[:80]!r}")
        signatures.append(NoteSignature(check_name(name), raw[:4], raw[4:]))
    if not signatures:
        raise CheckpointError("The note carries no signature.")
    return text, signatures


def open_note(note: str, public_key: bytes, *, name: str | None = None) -> str:
    """The note's text if a signature line by this Ed25519 key (under `name`, or under any name)
    verifies; an error naming what is wrong otherwise. Lines by other keys are ignored."""
    text, signatures = split_note(note)
    for sig in signatures:
        if (name is None or sig.name == name) and sig.key_hash == key_hash(sig.name, public_key):
            if not Verifier(sig.name, public_key).verify(sig.signature, text.encode()):
                raise CheckpointError(f"The signature by {sig.name} does not verify: the note was changed.")
            return text
    signers = ", ".join(f"{s.name} ({s.key_hash.hex()})" for s in signatures)
    raise CheckpointError(f"No signature by the configured key; signed by {signers}.")


# --- cosignatures (c2sp.org/tlog-cosignature, Ed25519 "cosignature/v1") ------------------------
def cosignature_message(text: str, timestamp: int) -> bytes:
    return f"{COSIGNATURE_HEADER}time {timestamp}\n{text}".encode()


def cosign_note(note: str, witness: Signer, timestamp: int) -> str:
    """The note with the witness's cosignature line added (the note's own lines kept as they are)."""
    if witness.alg != ALG_COSIGNATURE_V1:
        raise CheckpointError("A cosignature needs a witness key (algorithm 0x04).")
    if not 0 <= timestamp < 2**63:
        raise CheckpointError("A cosignature's timestamp is a POSIX time below 2^63.")
    text, _ = split_note(note)
    signature = witness.sign(cosignature_message(text, timestamp))
    encoded = base64.b64encode(witness.verifier.key_hash + timestamp.to_bytes(8, "big") + signature).decode()
    return f"{note}{SIGNATURE_PREFIX}{witness.name} {encoded}\n"


def open_cosignature(note: str, witness: Verifier) -> tuple[str, int]:
    """The note's text and the time of the witness's cosignature, if its line verifies; an error
    naming what is wrong otherwise."""
    text, signatures = split_note(note)
    for sig in signatures:
        if sig.name == witness.name and sig.key_hash == witness.key_hash:
            if len(sig.signature) != 8 + 64:
                raise CheckpointError(f"The cosignature by {sig.name} is not a timestamped Ed25519 signature.")
            timestamp = int.from_bytes(sig.signature[:8], "big")
            if timestamp >= 2**63 or not witness.verify(sig.signature[8:], cosignature_message(text, timestamp)):
                raise CheckpointError(f"The cosignature by {sig.name} does not verify: the note was changed.")
            return text, timestamp
    raise CheckpointError(f"No cosignature by the witness {witness.name} ({witness.key_hash.hex()}).")


# --- checkpoint bodies ------------------------------------------------------------------------
@dataclass(frozen=True)
class Checkpoint:
    origin: str
    seq: int
    head_hash: str
    seal_id: int | None
    seal_root: str | None
    time: datetime

    def text(self) -> str:
        seal = f"{self.seal_id} {self.seal_root}" if self.seal_id is not None else "none"
        moment = self.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines = [check_name(self.origin), f"audit-chain {self.seq} {self.head_hash}", f"prediction-seal {seal}"]
        return "\n".join([*lines, f"time {moment}", ""])

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) != 5 or lines[4]:
            raise CheckpointError("Not a checkpoint: expected origin, audit-chain, prediction-seal and time lines.")
        chain = re.fullmatch(r"audit-chain (0|[1-9][0-9]*) ([0-9a-f]{64})", lines[1])
        seal = re.fullmatch(r"prediction-seal (?:none|([1-9][0-9]*) ([0-9a-f]{64}))", lines[2])
        moment = re.fullmatch(r"time (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)", lines[3])
        if not (chain and seal and moment):
            raise CheckpointError("Not a checkpoint: expected origin, audit-chain, prediction-seal and time lines.")
        return cls(
            origin=lines[0],
            seq=int(chain[1]),
            head_hash=chain[2],
            seal_id=int(seal[1]) if seal[1] else None,
            seal_root=seal[2],
            time=datetime.strptime(moment[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
        )


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> str:
    return sign_note(checkpoint.text(), signer)


def open_checkpoint(note: str, public_key: bytes) -> Checkpoint:
    return Checkpoint.parse(open_note(note, public_key))


# --- the log file: notes one after another, each followed by an empty line ---------------------
@dataclass(frozen=True)
class LoggedNote:
    path: Path
    line: int  # where the note starts, counting from 1
    note: str

    @property
    def where(self) -> str:
        return f"{self.path.name} line {self.line}"


def append_note(directory: Path, note: str, name: str = LOG_NAME) -> Path:
    """Append under an exclusive lock (the beat task and the command may run at once) and fsync:
    a checkpoint that is reported written is on disk."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    with path.open("a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.write(note + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return path


def iter_notes(lines: Iterable[str], path: Path) -> Iterator[LoggedNote]:
    """Split a log into notes: a text block, an empty line, a signature block, an empty line.
    A damaged note comes out as it is, and fails when opened, naming its line."""
    text: list[str] = []
    signatures: list[str] = []
    in_signatures = False
    start = 0
    for number, line in enumerate(lines, 1):
        if not line.strip("\n"):
            if in_signatures and signatures:
                yield LoggedNote(path, start, "".join(text) + "\n" + "".join(signatures))
                text, signatures, in_signatures = [], [], False
            elif text:
                in_signatures = True
            continue
        if in_signatures:
            signatures.append(line)
            continue
        if not text:
            start = number
        text.append(line)
    if text:  # a last note cut short (a crash while appending)
        yield LoggedNote(path, start, "".join(text) + ("\n" + "".join(signatures) if in_signatures else ""))


def read_log(directory: Path, name: str = LOG_NAME) -> Iterator[LoggedNote]:
    path = directory / name
    if not path.exists():
        return
    with path.open(encoding="utf-8", newline="\n") as handle:
        yield from iter_notes(handle, path)
