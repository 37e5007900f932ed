"""Headless Chromium (Debian's, never a downloaded one) driven by Playwright's sync API.

Playwright's sync API runs an asyncio event loop in the test thread, which makes Django
refuse ORM calls from that thread unless DJANGO_ALLOW_ASYNC_UNSAFE is set.

While that loop runs, asgiref's thread-critical Local (which holds Django's connections)
switches from thread-local to context-local storage, so the test thread sees *another*
connection object than the one the test database was set up with. Two consequences shape
these fixtures:

* the test database is created before Playwright starts, and Playwright lives only for this
  module, so tests elsewhere in the session never run with the loop up;
* serialized_rollback cannot restore the migration-made role groups (the serialized
  contents hang on the other connection object), so the groups the transactional flush
  deletes are recreated here: before each test, and once more after the module.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

from playwright.sync_api import Browser, Page, Playwright, sync_playwright  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"


def ensure_role_groups() -> None:
    """What governance/migrations/0002_roles.py creates, and a transactional flush deletes."""
    from django.contrib.auth.models import Group

    from core.roles import ALL_ROLES

    for name in ALL_ROLES:
        Group.objects.get_or_create(name=name)


@pytest.fixture(scope="module")
def playwright_instance(django_db_setup: None, django_db_blocker: Any) -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is not installed: run `make browser` (apt-get install chromium).")
    with sync_playwright() as p:
        yield p
    # The last test's flush emptied the database; give later tests the migration data back.
    with django_db_blocker.unblock():
        ensure_role_groups()


@pytest.fixture(scope="module")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    browser = playwright_instance.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(autouse=True)
def role_groups(db: None) -> None:
    ensure_role_groups()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS
