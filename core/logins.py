"""Login lockouts (django-axes counts the failures and refuses; this module says who is asking,
adds the limits per address and per username, and writes the lockout into the audit trail).

axes locks a (username, address) pair out after LOGIN_FAILURE_LIMIT failures. LoginLimitsBackend,
first in AUTHENTICATION_BACKENDS, also refuses an address whose failures (over any usernames)
reach LOGIN_FAILURE_LIMIT_PER_ADDRESS, and a username whose failures (from any addresses) reach
LOGIN_FAILURE_LIMIT_PER_USERNAME, within the cool-off, with axes' own lockout answer (429)."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.exceptions import AxesBackendPermissionDenied
from axes.helpers import get_lockout_message
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from core import audit
from core.models import AuditEvent


def client_ip(request: Any) -> str:
    """The address lockouts count against. Behind a trusted proxy (TRUST_PROXY_HEADERS), the last
    X-Forwarded-For entry, which our proxy appended; a client's own entries come before it."""
    if settings.TRUST_PROXY_HEADERS:
        last = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            pass  # no address appended (a proxy that does not set it): the connection's own
    return str(request.META.get("REMOTE_ADDR", ""))


def _failures(**match: str) -> int:
    """Failed logins matching `match` (an address or a username) within the cool-off, as axes
    counted them (one row per username, address and client)."""
    since = timezone.now() - (settings.AXES_COOLOFF_TIME or timedelta(0))
    found = AccessAttempt.objects.filter(attempt_time__gte=since, **match).aggregate(n=Sum("failures_since_start"))
    return int(found["n"] or 0)


def exceeded_limit(*, username: str, ip_address: str) -> str:
    """ "address" or "username" when that limit is reached ("" when neither is)."""
    if ip_address and _failures(ip_address=ip_address) >= settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS:
        return "address"
    if username and _failures(username=username) >= settings.LOGIN_FAILURE_LIMIT_PER_USERNAME:
        return "username"
    return ""


class LoginLimitsBackend(AxesStandaloneBackend):
    """axes' backend (the pair's lockout), and before it the per-address and per-username limits,
    refused the way axes refuses: its middleware answers 429 with the lockout page."""

    def authenticate(self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any):
        if request is not None and getattr(settings, "AXES_ENABLED", True):
            name, address = str(username or "")[:150], client_ip(request)
            scope = exceeded_limit(username=name, ip_address=address)
            if scope:
                record_lockout(username=name, ip_address=address, scope=scope)
                kwargs.get("response_context", {})["error"] = get_lockout_message()
                request.axes_locked_out = True
                raise AxesBackendPermissionDenied(f"too many failed logins for this {scope}")
        return super().authenticate(request, username, password, **kwargs)


@transaction.atomic
def record_lockout(*, username: str, ip_address: str, scope: str = "") -> AuditEvent | None:
    """One core.login.locked_out event per lockout of a username from an address, of an address
    or of a username (`scope`); None when this lockout is already recorded: attempts during a
    lockout are refused, not recorded again."""
    since = timezone.now() - (settings.AXES_COOLOFF_TIME or timedelta(0))
    known = AuditEvent.objects.filter(action=audit.LOGIN_LOCKED_OUT, created_at__gte=since)
    if scope == "address":
        known = known.filter(data__scope=scope, data__ip_address=ip_address)
    elif scope == "username":
        known = known.filter(data__scope=scope, data__username=username)
    else:
        known = known.filter(data__username=username, data__ip_address=ip_address)
    if known.exists():
        return None
    user = get_user_model().objects.filter(username=username).first() if username else None
    limits = {
        "address": settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS,
        "username": settings.LOGIN_FAILURE_LIMIT_PER_USERNAME,
    }
    data: dict[str, Any] = {
        "username": username,
        "ip_address": ip_address,
        "failures": limits.get(scope, settings.AXES_FAILURE_LIMIT),
        "cooloff_minutes": int((settings.AXES_COOLOFF_TIME or timedelta(0)).total_seconds() // 60),
    }
    if scope:
        data["scope"] = scope
    return audit.record(audit.LOGIN_LOCKED_OUT, actor=None, target=user if scope != "address" else None, data=data)


def on_user_locked_out(
    sender: Any, *, request: Any = None, username: Any = None, ip_address: Any = None, **_: Any
) -> None:
    """Receiver of axes' user_locked_out signal (connected in CoreConfig.ready)."""
    record_lockout(username=str(username or "")[:150], ip_address=str(ip_address or ""))
