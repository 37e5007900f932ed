"""Login lockouts (django-axes counts the failures and refuses; this module says who is asking and
writes the lockout into the audit trail)."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
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


@transaction.atomic
def record_lockout(*, username: str, ip_address: str) -> AuditEvent | None:
    """One core.login.locked_out event per lockout of a username from an address (None when this
    lockout is already recorded: attempts during a lockout are refused, not recorded again)."""
    since = timezone.now() - (settings.AXES_COOLOFF_TIME or timedelta(0))
    known = AuditEvent.objects.filter(
        action=audit.LOGIN_LOCKED_OUT, created_at__gte=since, data__username=username, data__ip_address=ip_address
    )
    if known.exists():
        return None
    user = get_user_model().objects.filter(username=username).first() if username else None
    return audit.record(
        audit.LOGIN_LOCKED_OUT,
        actor=None,
        target=user,
        data={
            "username": username,
            "ip_address": ip_address,
            "failures": settings.AXES_FAILURE_LIMIT,
            "cooloff_minutes": int((settings.AXES_COOLOFF_TIME or timedelta(0)).total_seconds() // 60),
        },
    )


def on_user_locked_out(
    sender: Any, *, request: Any = None, username: Any = None, ip_address: Any = None, **_: Any
) -> None:
    """Receiver of axes' user_locked_out signal (connected in CoreConfig.ready)."""
    record_lockout(username=str(username or "")[:150], ip_address=str(ip_address or ""))
