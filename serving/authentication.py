"""`Authorization: Bearer <key>` for DRF. A key bound to a user authenticates as that user
(with that user's roles); an unbound key authenticates as a client with no role."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from governance.readonly import MESSAGE as READ_ONLY_MESSAGE
from governance.readonly import is_refused_write, record_refused_write
from serving import keys
from serving.models import ApiKey
from serving.services import hash_key

LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass
class ApiClient:
    """The identity of an API key that is bound to no user."""

    key: ApiKey
    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    pk: None = None

    @property
    def username(self) -> str:
        return f"api-key:{self.key.name}"

    def get_username(self) -> str:
        return self.username


def _remembers_keys(request: Request) -> bool:
    view = (getattr(request, "parser_context", None) or {}).get("view")
    return bool(getattr(view, "key_rechecked_at_write", False))


def _key_for(request: Request, key_hash: str) -> ApiKey | None:
    remember = _remembers_keys(request)
    key = keys.recent_keys.get(key_hash) if remember else None
    if key is None:
        key = keys.key_by_hash(key_hash)
        if remember and key is not None and key.revoked_at is None and key.user_id is None:
            keys.remember_key(key_hash, key)
    return key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send the key as `Authorization: Bearer <key>`.")
        try:
            raw = header[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The API key contains invalid characters.")
        key = _key_for(request, hash_key(raw))
        if key is None or key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        if key.user is not None and not key.user.is_active:
            raise exceptions.AuthenticationFailed("The API key's user is inactive.")
        if key.user is not None and is_refused_write(key.user, request.method, request.path):
            # The same rule as AuditorReadOnlyMiddleware, for auditors calling with a key.
            record_refused_write(actor=key.user, method=request.method or "", path=request.path)
            raise exceptions.PermissionDenied(READ_ONLY_MESSAGE)
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now  # (a remembered key is the same object next time)
        return (key.user if key.user is not None else ApiClient(key)), key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
