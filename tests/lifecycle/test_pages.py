"""The data scientists' pages: forms show errors beside fields and save nothing when refused."""

from __future__ import annotations

import pickle

import pytest

from lifecycle.models import ModelVersion, RegisteredModel
from tests.conftest import CARD, stored_files, upload

pytestmark = pytest.mark.django_db


def test_home_page_shows_each_role_what_it_can_do(client, data_scientist, risk_officer, auditor, outsider):
    for user, text in (
        (data_scientist, "As a data scientist"),
        (risk_officer, "Review queue"),
        (auditor, "As an auditor"),
        (outsider, "no role yet"),
    ):
        client.force_login(user)
        assert text in client.get("/").content.decode()


def test_anonymous_visitors_are_sent_to_login(client):
    response = client.get("/registry/models/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_register_model_form(client, data_scientist):
    client.force_login(data_scientist)
    response = client.post("/registry/models/new/", {"name": "credit-risk", "title": "Credit", "risk_tier": "high"})
    assert response.status_code == 302
    assert RegisteredModel.objects.get().owner == data_scientist
    bad = client.post("/registry/models/new/", {"name": "credit-risk", "title": "Credit", "risk_tier": "high"})
    assert "already exists" in bad.content.decode()


def _form_data(skops_bytes, train_csv, eval_csv, **overrides):
    data = {
        "artifact": upload("model.skops", skops_bytes),
        "training_data": upload("train.csv", train_csv, "text/csv"),
        "evaluation_data": upload("eval.csv", eval_csv, "text/csv"),
        "label_column": "risk",
        "sensitive_features": ["sex", "age_group"],
        "code_commit": "abc123",
        **CARD,
    }
    data.update(overrides)
    return data


def test_version_form_saves_a_draft_and_shows_it(
    client, data_scientist, registered_model, skops_bytes, train_csv, eval_csv
):
    client.force_login(data_scientist)
    response = client.post("/registry/models/credit-risk/versions/new/", _form_data(skops_bytes, train_csv, eval_csv))
    assert response.status_code == 302
    version = ModelVersion.objects.get()
    assert version.sensitive_features == ["sex", "age_group"]
    page = client.get(response["Location"]).content.decode()
    assert version.artifact_sha256 in page
    assert version.training_dataset.sha256 in page and "abc123" in page
    assert "Submit for review" in page


def test_refused_form_shows_the_error_beside_the_field_and_saves_nothing(
    client, data_scientist, registered_model, logreg, train_csv, eval_csv, media_root
):
    client.force_login(data_scientist)
    response = client.post(
        "/registry/models/credit-risk/versions/new/",
        _form_data(pickle.dumps(logreg), train_csv, eval_csv, sensitive_features=["religion"]),
    )
    assert response.status_code == 400
    form = response.context["form"]
    assert "pickle" in " ".join(form.errors["artifact"])
    assert "religion" in " ".join(form.errors["sensitive_features"])
    assert ModelVersion.objects.count() == 0 and stored_files(media_root) == []


def test_oversized_upload_in_the_form_gets_413(
    client, data_scientist, registered_model, skops_bytes, train_csv, eval_csv, settings
):
    settings.MAX_ARTIFACT_BYTES = 100
    client.force_login(data_scientist)
    response = client.post("/registry/models/credit-risk/versions/new/", _form_data(skops_bytes, train_csv, eval_csv))
    assert response.status_code == 413
    assert "limit is 100 bytes" in response.content.decode()


def test_edit_draft(client, data_scientist, draft_version):
    client.force_login(data_scientist)
    url = "/registry/models/credit-risk/versions/1/edit/"
    response = client.post(url, {**CARD, "intended_use": "Pre-screening only.", "sensitive_features": "sex"})
    assert response.status_code == 302
    draft_version.refresh_from_db()
    assert draft_version.card.intended_use == "Pre-screening only."
    assert draft_version.sensitive_features == ["sex"]
    bad = client.post(url, {**CARD, "sensitive_features": "zodiac"})
    assert bad.status_code == 400 and "zodiac" in bad.content.decode()


def test_outsider_is_refused_on_every_page(client, outsider, draft_version):
    client.force_login(outsider)
    for url in (
        "/registry/models/",
        "/registry/models/new/",
        "/registry/models/credit-risk/",
        "/registry/models/credit-risk/versions/new/",
        "/registry/models/credit-risk/versions/1/",
        "/registry/models/credit-risk/versions/1/edit/",
    ):
        assert client.get(url).status_code == 403, url
    assert client.post("/registry/models/credit-risk/versions/1/submit/").status_code == 403


def test_user_text_is_escaped_on_the_version_page(client, data_scientist, draft_version):
    from lifecycle import services

    services.update_draft(
        draft_version.pk,
        actor=data_scientist,
        card={**CARD, "caveats_and_recommendations": "<script>alert(1)</script>"},
        sensitive_features=["sex"],
    )
    client.force_login(data_scientist)
    page = client.get("/registry/models/credit-risk/versions/1/").content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
