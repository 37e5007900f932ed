"""API keys as the serving path reads them: one precompiled query by hash, and the client keys
(bound to no user) this process accepted before. Only the prediction path may start from a
remembered key, because its log INSERT re-checks in the same statement that the key is not
revoked; when that check fails the key is read again (recheck_key), and a revoked key is
refused with KeyRevoked, which the interface answers as at the door (401)."""

from __future__ import annotations

from core import caches
from serving import rawsql, statements
from serving.errors import ServingError
from serving.models import ApiKey
from serving.writers import writer


class KeyRevoked(ServingError):
    """The caller's API key was revoked (or deleted) after this process accepted it."""

    def __init__(self) -> None:
        super().__init__("Unknown or revoked API key.", status=401, code="authentication_failed")


def key_by_hash(key_hash: str) -> ApiKey | None:
    """One precompiled query."""
    rows = writer().fetch(statements.key_by_hash(), [key_hash])
    return rawsql.instance(ApiKey, statements.KEY_FIELDS, rows[0]) if rows else None


# Client keys (bound to no user) this process accepted before, by hash. Only the prediction views
# use them (`key_rechecked_at_write = True`): their log INSERT re-checks in the same statement
# that the key is not revoked, and a failed check forgets the key and reads it again
# (serving.predict). Every other view reads the key on every request. Keys bound to a user are
# always read: the user's roles and active flag matter too.
recent_keys: dict[str, ApiKey] = {}
RECENT_KEYS_MAX = 4096


def forget_key(key: ApiKey) -> None:
    recent_keys.pop(key.key_hash, None)


def clear_recent_keys() -> None:
    recent_keys.clear()


caches.register("serving.keys.recent_keys", clear_recent_keys)


def recheck_key(key: ApiKey) -> None:
    """Read a remembered key again: KeyRevoked (401) if it was revoked meanwhile."""
    forget_key(key)
    fresh = key_by_hash(key.key_hash)
    if fresh is None or fresh.revoked_at is not None:
        raise KeyRevoked()


def remember_key(key_hash: str, key: ApiKey) -> None:
    if len(recent_keys) >= RECENT_KEYS_MAX:
        recent_keys.clear()
    recent_keys[key_hash] = key
