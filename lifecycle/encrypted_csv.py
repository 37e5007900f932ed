"""The stored format of an encrypted dataset file: bytes and a key in, bytes out, no database.

    header   "MGDS" | version (1 byte) | segment size (4 bytes, big-endian) | nonce prefix (7 bytes)
    segments AES-256-GCM of each `segment size` bytes of the CSV (the last one shorter, never
             absent), each followed by its 16-byte tag

The nonce of segment i is prefix | i (4 bytes) | last (1 byte); its associated data binds the
dataset's identity (name, version, SHA-256 of the plaintext), the header, i and the last-segment
flag. So a changed byte, a reordered or dropped segment, a file cut at a segment boundary, bytes
appended after the last segment, and a file copied to another dataset all fail to decrypt, and
the reader knows which segment is last only by reaching the end of the file (STREAM, Hoang et
al. 2015, as in Tink's streaming AEAD)."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"MGDS"
VERSION = 1
SEGMENT_BYTES = 1 << 20  # 1 MiB of plaintext per segment
TAG_BYTES = 16
HEADER = struct.Struct(">4sBI7s")  # 16 bytes
MAX_SEGMENT_BYTES = 64 << 20
MAX_SEGMENTS = 1 << 32  # the 4-byte counter in the nonce


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class FormatError(ValueError):
    """The file is not an intact encrypted dataset file for this key and identity."""


def identity(*, name: str, version: int, sha256: str) -> bytes:
    """What a file is bound to: the dataset it belongs to."""
    return f"dataset\x1f{name}\x1f{version}\x1f{sha256}".encode()


def is_encrypted(head: bytes) -> bool:
    return head[: len(MAGIC)] == MAGIC


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _aad(ident: bytes, header: bytes, index: int, last: bool) -> bytes:
    return len(ident).to_bytes(4, "big") + ident + header + index.to_bytes(8, "big") + (b"\x01" if last else b"\x00")


def encrypt(plain: bytes, key: bytes, ident: bytes, *, segment_bytes: int | None = None) -> bytes:
    """The whole file: header, then every segment (one, possibly empty, for an empty input)."""
    segment_bytes = segment_bytes or SEGMENT_BYTES
    if not 1 <= segment_bytes <= MAX_SEGMENT_BYTES:
        raise ValueError("segment size out of range")
    count = max(1, -(-len(plain) // segment_bytes))
    if count > MAX_SEGMENTS:
        raise ValueError("too many segments")
    prefix = os.urandom(7)
    header = HEADER.pack(MAGIC, VERSION, segment_bytes, prefix)
    aead = AESGCM(key)
    parts = [header]
    for index in range(count):
        last = index == count - 1
        chunk = plain[index * segment_bytes : (index + 1) * segment_bytes]
        parts.append(aead.encrypt(_nonce(prefix, index, last), chunk, _aad(ident, header, index, last)))
    return b"".join(parts)


def _read_exactly(handle: Readable, size: int) -> bytes:
    """Up to `size` bytes, fewer only at the end of the file (a storage's read may return less)."""
    parts, missing = [], size
    while missing:
        part = handle.read(missing)
        if not part:
            break
        parts.append(part)
        missing -= len(part)
    return b"".join(parts)


def decrypt(handle: Readable, key: bytes, ident: bytes) -> Iterator[bytes]:
    """The plaintext, segment by segment, each authenticated before it is given out. Raises
    FormatError (never a value of the file) at the first segment that does not open."""
    header = _read_exactly(handle, HEADER.size)
    if len(header) < HEADER.size or not is_encrypted(header):
        raise FormatError("it is not an encrypted dataset file (no header)")
    _, version, segment_bytes, prefix = HEADER.unpack(header)
    if version != VERSION:
        raise FormatError(f"its format version {version} is not known")
    if not 1 <= segment_bytes <= MAX_SEGMENT_BYTES:
        raise FormatError("its header names an impossible segment size")
    size = segment_bytes + TAG_BYTES
    aead = AESGCM(key)
    index = 0
    current = _read_exactly(handle, size)
    while True:
        # read ahead: a segment is the last one only if nothing follows it
        following = _read_exactly(handle, size) if len(current) == size else b""
        last = not following
        if len(current) < TAG_BYTES or index >= MAX_SEGMENTS:
            raise FormatError(f"it ends inside segment {index} (truncated)")
        try:
            yield aead.decrypt(_nonce(prefix, index, last), current, _aad(ident, header, index, last))
        except InvalidTag:
            raise FormatError(
                f"segment {index} does not decrypt: the file was changed, truncated, reordered, or belongs to "
                "another dataset"
            ) from None
        if last:
            return
        current, index = following, index + 1


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


def encrypt_stream(
    source: Readable, out: Writable, key: bytes, ident: bytes, *, segment_bytes: int | None = None
) -> None:
    """encrypt(), from a file to a file, one segment in memory at a time (a batch input may be
    gigabytes): the same format, so decrypt() and read_range() open it."""
    segment_bytes = segment_bytes or SEGMENT_BYTES
    if not 1 <= segment_bytes <= MAX_SEGMENT_BYTES:
        raise ValueError("segment size out of range")
    prefix = os.urandom(7)
    header = HEADER.pack(MAGIC, VERSION, segment_bytes, prefix)
    aead = AESGCM(key)
    out.write(header)
    index, current = 0, _read_exactly(source, segment_bytes)
    while True:
        following = _read_exactly(source, segment_bytes) if len(current) == segment_bytes else b""
        last = not following
        if index >= MAX_SEGMENTS:
            raise ValueError("too many segments")
        out.write(aead.encrypt(_nonce(prefix, index, last), current, _aad(ident, header, index, last)))
        if last:
            return
        current, index = following, index + 1


class Seekable(Readable, Protocol):
    def seek(self, offset: int, whence: int = 0, /) -> int: ...


def read_range(handle: Seekable, key: bytes, ident: bytes, *, start: int, end: int, plain_size: int) -> bytes:
    """Plaintext bytes [start, end) of a file of `plain_size` plaintext bytes, decrypting only the
    segments that hold them (each authenticated, with its position and last-segment flag)."""
    handle.seek(0)
    header = _read_exactly(handle, HEADER.size)
    if len(header) < HEADER.size or not is_encrypted(header):
        raise FormatError("it is not an encrypted dataset file (no header)")
    _, version, segment_bytes, prefix = HEADER.unpack(header)
    if version != VERSION or not 1 <= segment_bytes <= MAX_SEGMENT_BYTES:
        raise FormatError("its header is not one this reader knows")
    last_index = max(1, -(-plain_size // segment_bytes)) - 1
    aead = AESGCM(key)
    parts = []
    first, final = start // segment_bytes, max(start, end - 1) // segment_bytes
    for index in range(first, min(final, last_index) + 1):
        handle.seek(HEADER.size + index * (segment_bytes + TAG_BYTES))
        sealed = _read_exactly(handle, segment_bytes + TAG_BYTES)
        last = index == last_index
        try:
            parts.append(aead.decrypt(_nonce(prefix, index, last), sealed, _aad(ident, header, index, last)))
        except InvalidTag:
            raise FormatError(f"segment {index} does not decrypt: the file was changed or belongs elsewhere") from None
    data = b"".join(parts)
    offset = first * segment_bytes
    return data[start - offset : end - offset]
