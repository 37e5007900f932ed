"""Where a webhook may go and how it is sent: http(s) only, and never to a private, loopback,
link-local or otherwise internal address unless WEBHOOK_ALLOW_PRIVATE is set (server-side
request forgery), including an IPv6 address that embeds one (NAT64, 6to4, Teredo, IPv4-mapped).
Redirects are never followed. The address is checked when the endpoint is saved and again at every attempt,
and the request connects to the very address that was checked (no second DNS lookup that could
answer differently), with the URL's host name kept for the Host header and TLS."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from integrations.errors import IntegrationError


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str  # the IP checked and connected to


NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known prefix (RFC 6052): the last 32 bits are an IPv4
NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # local-use prefix (RFC 8215): never global
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated ::a.b.c.d


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to through a transition mechanism: IPv4-mapped,
    NAT64, 6to4, Teredo (server and client), IPv4-compatible. On a network with NAT64 or a 6to4
    relay, 64:ff9b::a9fe:a9fe reaches 169.254.169.254 although Python calls it global."""
    found = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    if ip in NAT64 or ip in IPV4_COMPATIBLE:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [v4 for v4 in found if v4 is not None]


def _is_internal(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in NAT64_LOCAL:
            return True
        embedded = _embedded_ipv4(ip)
        if ip.ipv4_mapped is None and (not ip.is_global or ip.is_multicast):
            return True
        return any(not v4.is_global or v4.is_multicast for v4 in embedded)
    return not ip.is_global or ip.is_multicast


def resolve(url: str, *, allow_private: bool | None = None) -> Target:
    """Check a webhook URL and resolve its host; IntegrationError (field `url`) says why not."""
    allow = settings.WEBHOOK_ALLOW_PRIVATE if allow_private is None else allow_private
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise IntegrationError("A webhook URL must start with http:// or https://.", field="url")
    if not parts.hostname:
        raise IntegrationError("The webhook URL has no host.", field="url")
    if parts.username or parts.password:
        raise IntegrationError("Put no credentials in the webhook URL; requests are signed instead.", field="url")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise IntegrationError("The webhook URL's port is not a number from 1 to 65535.", field="url") from None
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise IntegrationError(f"The host {parts.hostname!r} does not resolve ({exc}).", field="url") from None
    addresses = [str(info[4][0]) for info in infos]
    internal = [a for a in addresses if _is_internal(a)]
    if internal and not allow:
        raise IntegrationError(
            f"The host {parts.hostname!r} resolves to an internal address ({internal[0]}): private, loopback and "
            "link-local addresses are refused unless WEBHOOK_ALLOW_PRIVATE is set.",
            field="url",
        )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port, path, addresses[0])


@dataclass(frozen=True)
class Response:
    status: int | None
    latency_ms: float
    error: str = ""
    body_excerpt: str = ""
    retry_after: float | None = None


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self._address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def post(url: str, *, body: str, headers: dict[str, str], timeout: float) -> Response:
    """POST once; never raises for the network or the receiver, never follows a redirect."""
    started = time.perf_counter()

    def elapsed() -> float:
        return round((time.perf_counter() - started) * 1000, 3)

    try:
        target = resolve(url)
    except IntegrationError as exc:
        return Response(None, elapsed(), error=exc.message)
    conn: http.client.HTTPConnection = (
        _PinnedHTTPSConnection(target, timeout) if target.scheme == "https" else _PinnedHTTPConnection(target, timeout)
    )
    try:
        conn.request("POST", target.path, body=body.encode(), headers={**headers, "user-agent": "modelgov-webhooks/1"})
        answer = conn.getresponse()
        excerpt = answer.read(500).decode("utf-8", "replace")
        retry_after = answer.getheader("retry-after")
        # A redirect is never followed (its target was never checked): a failed attempt that says so.
        redirect = (
            f"The receiver answered {answer.status} (a redirect to {answer.getheader('location', '?')[:200]}); "
            "redirects are not followed: set the endpoint's URL to the final address."
            if 300 <= answer.status < 400
            else ""
        )
        return Response(
            answer.status,
            elapsed(),
            error=redirect,
            body_excerpt=excerpt,
            retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
        )
    except (OSError, http.client.HTTPException) as exc:
        return Response(None, elapsed(), error=f"{type(exc).__name__}: {exc}"[:500])
    finally:
        conn.close()
