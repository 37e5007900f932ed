"""/metrics is for the second line and operations only: a bearer credential (METRICS_TOKEN, or an
API key of a risk officer or an auditor), never anonymous (401) even with no token configured;
and label values come only from registered models, so made-up names add no series."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from core.roles import AUDITORS, DATA_SCIENTISTS, RISK_OFFICERS
from serving.services import create_api_key
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def key_of(role: str | None) -> str:
    user = UserFactory(username=f"metrics-{role or 'none'}", roles=[role] if role else [])
    return create_api_key(actor=None, name=f"scraper-{role}", username=user.username)[1]


def test_anonymous_is_401_even_without_a_token_configured(client: Client, settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics")
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Bearer"
    assert b"modelgov_" not in response.content


def test_an_officers_or_auditors_api_key_reads_metrics_others_do_not(client: Client, settings: Any) -> None:
    settings.METRICS_TOKEN = "ops-token"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ops-token").status_code == 200
    for role in (RISK_OFFICERS, AUDITORS):
        assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {key_of(role)}").status_code == 200, role
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {key_of(DATA_SCIENTISTS)}").status_code == 403
    client_key = create_api_key(actor=None, name="a-scoring-client")[1]
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {client_key}").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer mgk_not-a-key").status_code == 401


def test_an_unknown_model_adds_no_series(production, keyed, client: Client, settings: Any) -> None:
    settings.METRICS_TOKEN = "ops-token"
    for name in ("made-up-model-1", "made-up-model-2"):
        assert keyed.post(f"/api/v1/models/{name}/predict", {"instances": [{}]}, format="json").status_code == 404
        assert keyed.post(f"/v2/models/{name}/infer", {"inputs": []}, format="json").status_code in (400, 404)
    v2 = f"/v2/models/{production.registered_model.name}/versions/987654/infer"
    assert keyed.post(v2, {"inputs": []}, format="json").status_code in (400, 404)
    text = client.get("/metrics", HTTP_AUTHORIZATION="Bearer ops-token").content.decode()
    assert "made-up-model" not in text and "987654" not in text
    assert 'model="(unregistered)"' in text
