"""The key encryption key of personal data (docs/design.md, "Personal data"): envelope encryption.

Every data key of personal data is stored wrapped (AES-256-GCM) by the KEK from LOG_KEK, which
lives outside the database: the prediction log's subject keys (serving.personal) and the
datasets' keys (lifecycle.dataset_store). The associated data of a wrapped key names what the key
is for, so a wrapped key copied to another row does not open there. LOG_KEK_PREVIOUS still
unwraps keys wrapped before a rotation; new keys are always wrapped by the current KEK."""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from core import caches
from core.errors import DomainError
from core.keyfiles import read_or_create

SUBJECT_KEY = b"subject-key"  # the associated data of the log's subject keys (serving.personal)


class KekUnavailable(DomainError):
    """A data key cannot be unwrapped: LOG_KEK is wrong, or the KEK that wrapped it is not
    configured. Nothing is read (or written) in clear instead."""

    code = "keys_unavailable"
    status = 503


def decode_key(text: str, what: str) -> bytes:
    text = text.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ImproperlyConfigured(f"{what} must be 32 bytes, as 64 hex digits or base64.")
    return raw


def kek_id(key: bytes) -> str:
    return hashlib.sha256(b"log-kek" + key).hexdigest()[:16]


@functools.cache
def keks() -> tuple[str, dict[str, bytes]]:
    """The current KEK's id, and every KEK that may unwrap (current and previous)."""
    if settings.LOG_KEK:
        current = decode_key(settings.LOG_KEK, "LOG_KEK")
    elif settings.DEBUG:
        current = decode_key(
            read_or_create(settings.LOG_KEK_FILE, lambda: secrets.token_hex(32), what="LOG_KEK"), "LOG_KEK"
        )
    else:
        raise ImproperlyConfigured("LOG_KEK must be set when DEBUG=False (the key of personal data in the log).")
    keys = {kek_id(current): current}
    for text in settings.LOG_KEK_PREVIOUS:
        old = decode_key(text, "LOG_KEK_PREVIOUS")
        keys.setdefault(kek_id(old), old)
    return kek_id(current), keys


def forget_keks() -> None:
    """After a change of LOG_KEK (tests, rotation): read the settings again."""
    keks.cache_clear()


caches.register("core.envelope.keks", forget_keks)


@functools.lru_cache(maxsize=8)
def kek_aead(kek: bytes) -> AESGCM:
    return AESGCM(kek)


caches.register("core.envelope.kek_aeads", kek_aead.cache_clear)


def wrap(data_key: bytes, *, context: bytes = SUBJECT_KEY) -> tuple[str, bytes]:
    """(the current KEK's id, nonce + the data key encrypted under it with `context` as associated data)."""
    current, keys = keks()
    nonce = os.urandom(12)
    return current, nonce + kek_aead(keys[current]).encrypt(nonce, data_key, context)


def unwrap(
    key_id: str,
    wrapped: bytes,
    *,
    context: bytes = SUBJECT_KEY,
    what: str = "The personal data in the log",
    its: str = "its keys",
) -> bytes:
    """The data key, or KekUnavailable naming `what` cannot be read and why (never a value)."""
    _, keys = keks()
    kek = keys.get(key_id)
    if kek is None:
        raise KekUnavailable(
            f"{what} cannot be read: {its} {'were' if its.endswith('s') else 'was'} wrapped by a key encryption key "
            "that is not configured "
            "(LOG_KEK, LOG_KEK_PREVIOUS)."
        )
    try:
        return AESGCM(kek).decrypt(bytes(wrapped[:12]), bytes(wrapped[12:]), context)
    except InvalidTag:
        raise KekUnavailable(f"{what} cannot be read: LOG_KEK does not open {its} (a wrong key?).") from None
