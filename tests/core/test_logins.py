"""Login throttling (django-axes) and its audit trail: five wrong passwords for one username from
one address lock that pair out, even with the right password, and the lockout is audited once."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from core import audit
from core.models import AuditEvent
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def attempt(client: Client, username: str, password: str, **extra: Any) -> Any:
    return client.post("/login/", {"username": username, "password": password}, **extra)


def test_five_wrong_passwords_lock_the_login_even_with_the_right_password(data_scientist: Any) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, "dana", "wrong-password").status_code == 200  # the form again, with its error
    locked = attempt(client, "dana", "wrong-password")
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()

    refused = attempt(client, "dana", PASSWORD)
    assert refused.status_code == 429
    assert "_auth_user_id" not in client.session
    assert Client().get("/").status_code == 302  # (and nobody is logged in)


def test_a_lockout_is_audited_once_naming_the_account_and_the_address(data_scientist: Any) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT + 3):
        attempt(client, "dana", "wrong-password", REMOTE_ADDR="203.0.113.7")
    events = list(AuditEvent.objects.filter(action=audit.LOGIN_LOCKED_OUT))
    assert len(events) == 1  # attempts during the lockout are refused, not recorded again
    event = events[0]
    assert event.target_type == "auth.user" and event.target_id == str(data_scientist.pk)
    assert event.data["username"] == "dana" and event.data["ip_address"] == "203.0.113.7"
    assert event.data["failures"] == settings.AXES_FAILURE_LIMIT
    assert audit.verify_chain().ok


def test_the_lockout_is_per_username_and_address(data_scientist: Any) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(Client(), "dana", "wrong-password", REMOTE_ADDR="203.0.113.7")
    assert attempt(Client(), "dana", PASSWORD, REMOTE_ADDR="203.0.113.7").status_code == 429
    # The same person from elsewhere is not locked out by someone guessing from that address.
    assert attempt(Client(), "dana", PASSWORD, REMOTE_ADDR="198.51.100.4").status_code == 302


def test_a_successful_login_clears_the_failure_count(data_scientist: Any) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        attempt(client, "dana", "wrong-password")
    assert attempt(client, "dana", PASSWORD).status_code == 302
    client.post("/logout/")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        attempt(client, "dana", "wrong-password")
    assert attempt(client, "dana", PASSWORD).status_code == 302


def test_the_admin_login_is_throttled_too(risk_officer: Any) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/admin/login/", {"username": risk_officer.username, "password": "wrong-password"})
    response = client.post("/admin/login/", {"username": risk_officer.username, "password": PASSWORD})
    assert response.status_code == 429


def test_forwarded_addresses_count_only_behind_a_trusted_proxy(settings: Any, data_scientist: Any) -> None:
    """Without TRUST_PROXY_HEADERS a client cannot dodge the lockout by inventing X-Forwarded-For."""
    settings.TRUST_PROXY_HEADERS = False
    for i in range(settings.AXES_FAILURE_LIMIT):
        attempt(Client(), "dana", "wrong-password", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")
    assert attempt(Client(), "dana", PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.200").status_code == 429


def test_behind_a_trusted_proxy_the_address_it_appended_counts(settings: Any) -> None:
    from django.test import RequestFactory

    from core.logins import client_ip

    request = RequestFactory().get("/", HTTP_X_FORWARDED_FOR="10.9.9.9, 203.0.113.7", REMOTE_ADDR="127.0.0.1")
    settings.TRUST_PROXY_HEADERS = False
    assert client_ip(request) == "127.0.0.1"
    settings.TRUST_PROXY_HEADERS = True
    assert client_ip(request) == "203.0.113.7"
    garbled = RequestFactory().get("/", HTTP_X_FORWARDED_FOR="203.0.113.7, not-an-address", REMOTE_ADDR="127.0.0.1")
    assert client_ip(garbled) == "127.0.0.1"


def test_other_ways_in_are_not_affected_by_a_lockout(client: Any, api_client: Any, data_scientist: Any) -> None:
    """Test sessions (force_login) and API keys never go through authenticate(): a locked-out
    username stops only the login form."""
    from serving.services import create_api_key

    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(Client(), "dana", "wrong-password")
    client.force_login(data_scientist)
    assert client.get("/").status_code == 200
    raw = create_api_key(actor=None, name="pipeline", username="dana")[1]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api_client.get("/api/v1/models/").status_code == 200


def test_one_address_trying_many_usernames_is_locked_out_for_every_username(settings: Any, data_scientist: Any) -> None:
    settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS = 8
    for i in range(8):  # each username stays below its own pair limit
        assert attempt(Client(), f"guess{i}", "wrong-password", REMOTE_ADDR="203.0.113.9").status_code == 200
    refused = attempt(Client(), "dana", PASSWORD, REMOTE_ADDR="203.0.113.9")
    assert refused.status_code == 429 and "Too many failed logins" in refused.content.decode()
    assert attempt(Client(), "dana", PASSWORD, REMOTE_ADDR="198.51.100.4").status_code == 302
    event = AuditEvent.objects.get(action=audit.LOGIN_LOCKED_OUT)
    assert event.data["ip_address"] == "203.0.113.9" and event.data["scope"] == "address"


def test_many_addresses_trying_one_username_lock_that_username_out(settings: Any, data_scientist: Any) -> None:
    settings.LOGIN_FAILURE_LIMIT_PER_USERNAME = 6
    for i in range(6):  # one failure from each address: no pair comes near its limit
        assert attempt(Client(), "dana", "wrong-password", REMOTE_ADDR=f"198.51.100.{10 + i}").status_code == 200
    assert attempt(Client(), "dana", PASSWORD, REMOTE_ADDR="203.0.113.50").status_code == 429
    event = AuditEvent.objects.get(action=audit.LOGIN_LOCKED_OUT)
    assert event.data["username"] == "dana" and event.data["scope"] == "username"


def test_the_address_and_username_limits_default_above_the_pair_limit() -> None:
    assert settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS > settings.AXES_FAILURE_LIMIT
    assert settings.LOGIN_FAILURE_LIMIT_PER_USERNAME > settings.AXES_FAILURE_LIMIT
