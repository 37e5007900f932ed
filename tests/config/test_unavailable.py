"""The database down: a session-authenticated request gets a 503 that says so, on pages and under
/api/ alike, never a 500. The session is in the database, so the outage is met while
loading the user: in a view, in DRF's authentication, or in a middleware before any view."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test import Client

pytestmark = pytest.mark.django_db


@contextmanager
def database_down() -> Iterator[None]:
    def refuse(self: Any) -> None:
        raise OperationalError('connection to server at "db" (10.0.0.5), port 5432 failed: Connection refused')

    with mock.patch.object(BaseDatabaseWrapper, "ensure_connection", refuse):
        yield


@pytest.fixture
def logged_in(data_scientist: Any) -> Client:
    # raise_request_exception=False: see what a browser would get, as Django answers it.
    client = Client(raise_request_exception=False)
    client.force_login(data_scientist)
    return client


def test_a_page_with_a_session_is_503_when_the_database_is_down(logged_in: Client) -> None:
    with database_down():
        response = logged_in.get("/registry/models/")
    assert response.status_code == 503
    page = response.content.decode()
    assert "The database is unreachable" in page and "Temporarily unavailable" in page
    assert "10.0.0.5" not in page and "5432" not in page  # nothing about where the database is
    assert response["Retry-After"]


def test_the_home_page_is_503_too(logged_in: Client) -> None:
    with database_down():
        assert logged_in.get("/").status_code == 503


def test_an_api_request_with_a_session_is_503_in_the_api_error_shape(logged_in: Client) -> None:
    with database_down():
        response = logged_in.get("/api/v1/models/")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"


def test_a_write_refused_in_a_middleware_is_503_too(auditor: Any) -> None:
    """A POST with a session meets the outage in the auditors' read-only middleware, before any
    view: handler500 turns that into the same 503."""
    client = Client(raise_request_exception=False, enforce_csrf_checks=False)
    client.force_login(auditor)
    with database_down():
        page = client.post("/registry/models/new/", {"name": "x"})
        api = client.post("/api/v1/models/", {"name": "x"})
    assert page.status_code == 503 and "The database is unreachable" in page.content.decode()
    assert api.status_code == 503 and api.json()["error"]["code"] == "database_unavailable"


def test_other_errors_stay_500(logged_in: Client) -> None:
    with mock.patch("governance.views.render", side_effect=RuntimeError("a bug")):
        assert logged_in.get("/").status_code == 500
