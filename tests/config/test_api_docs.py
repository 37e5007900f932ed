"""The API schema and docs are behind login in production (API_DOCS_REQUIRE_LOGIN, on when
DEBUG=False), with a session or an API key."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from serving.services import create_api_key
from tests.config.test_deploy import production_env, setting

pytestmark = pytest.mark.django_db


def test_production_settings_require_login_for_the_api_docs() -> None:
    assert setting("API_DOCS_REQUIRE_LOGIN", production_env()) == "True"
    assert setting("API_DOCS_REQUIRE_LOGIN", production_env(DEBUG="True")) == "False"


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_anonymous_callers_get_no_schema_or_docs_when_login_is_required(
    client: Any, settings: Any, auditor: Any, path: str
) -> None:
    settings.API_DOCS_REQUIRE_LOGIN = True
    assert client.get(path).status_code in (401, 403)
    client.force_login(auditor)
    assert client.get(path).status_code == 200
    key = create_api_key(actor=None, name="docs-reader")[1]
    assert Client().get(path, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
