"""Uploads kept across a refused version form: a file that was not itself the problem is staged,
so the data scientist fixes the card (or another file) without choosing every file again.

A staged file is encrypted (AES-GCM) under a key that lives only in the uploader's session (the
session is in the database, the file under STAGED_UPLOAD_DIR, apart from MEDIA_ROOT): training data may hold personal
data, and nothing of it is kept in clear. The page shows each kept file's name and SHA-256; the
next post names it by a random token, which is honoured only for the session that staged it and
only while the bytes still hash to what was shown. Staged files go once the version is saved, when
replaced, and after STAGED_UPLOAD_HOURS in any case."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import SimpleUploadedFile

FIELDS = ("artifact", "training_data", "evaluation_data")
SESSION_KEY = "staged_uploads"
STAGED_UPLOAD_HOURS = 24


@dataclass(frozen=True)
class Staged:
    field: str
    token: str
    name: str
    sha256: str
    size: int


def _storage() -> FileSystemStorage:
    return FileSystemStorage(location=settings.STAGED_UPLOAD_DIR)


def _path(token: str) -> str:
    return token


def _entries(session: Any) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = session.get(SESSION_KEY) or {}
    return entries


def stage(session: Any, field: str, upload: Any) -> Staged:
    """Keep `upload` (the form's file for `field`) encrypted, replacing what the field kept."""
    upload.seek(0)
    data = upload.read()
    upload.seek(0)
    key, nonce = AESGCM.generate_key(bit_length=256), os.urandom(12)
    token = secrets.token_urlsafe(24)
    _storage().save(_path(token), ContentFile(nonce + AESGCM(key).encrypt(nonce, data, token.encode())))
    entries = _entries(session)
    for old, entry in list(entries.items()):
        if entry["field"] == field:
            discard(session, old)
    entry = {
        "field": field,
        "name": os.path.basename(getattr(upload, "name", "") or field)[:200],
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "key": base64.b64encode(key).decode(),
        "at": time.time(),
    }
    entries = _entries(session)
    entries[token] = entry
    session[SESSION_KEY] = entries
    return Staged(field, token, entry["name"], entry["sha256"], entry["size"])


def kept(session: Any) -> dict[str, Staged]:
    """The files this session has staged, by form field."""
    return {
        e["field"]: Staged(e["field"], token, e["name"], e["sha256"], e["size"])
        for token, e in _entries(session).items()
    }


def load(session: Any, token: str) -> SimpleUploadedFile | None:
    """The staged file named by `token` as an upload again, or None (another session's token, an
    expired or tampered file)."""
    entry = _entries(session).get(token)
    if entry is None or time.time() - entry["at"] > STAGED_UPLOAD_HOURS * 3600:
        return None
    try:
        with _storage().open(_path(token), "rb") as handle:
            blob = handle.read()
        data = AESGCM(base64.b64decode(entry["key"])).decrypt(blob[:12], blob[12:], token.encode())
    except Exception:  # gone, or not what was staged: the user chooses the file again
        return None
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        return None
    return SimpleUploadedFile(entry["name"], data)


def discard(session: Any, token: str) -> None:
    entries = _entries(session)
    if entries.pop(token, None) is not None:
        session[SESSION_KEY] = entries
    if _storage().exists(_path(token)):
        _storage().delete(_path(token))


def discard_all(session: Any) -> None:
    for token in list(_entries(session)):
        discard(session, token)


def sweep(*, now: float | None = None) -> int:
    """Delete staged files older than STAGED_UPLOAD_HOURS (whatever session staged them)."""
    now = now or time.time()
    removed = 0
    try:
        _, files = _storage().listdir("")
    except FileNotFoundError:
        return 0
    for name in files:
        path = _path(name)
        try:
            age = now - _storage().get_modified_time(path).timestamp()
        except (FileNotFoundError, NotImplementedError):
            continue
        if age > STAGED_UPLOAD_HOURS * 3600:
            _storage().delete(path)
            removed += 1
    return removed
