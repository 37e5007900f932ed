"""A version is never submitted with an empty model card: intended use, out-of-scope uses,
factors, metrics, ethical considerations, caveats and recommendations are required, and each
missing one is named in the refusal."""

from __future__ import annotations

import pytest

from lifecycle import services, submission
from lifecycle.errors import SubmissionInvalid
from lifecycle.models import ModelCard, ModelVersion
from tests.conftest import CARD, make_version, stored_files
from tests.lifecycle.test_submission import post_version

pytestmark = pytest.mark.django_db

REQUIRED = (
    "intended_use",
    "out_of_scope_uses",
    "factors",
    "metrics",
    "ethical_considerations",
    "caveats_and_recommendations",
)


def test_the_required_sections_are_the_ones_the_issue_names():
    assert submission.REQUIRED_CARD_FIELDS == REQUIRED


def test_each_blank_required_section_is_named_and_nothing_is_saved(
    data_scientist, registered_model, skops_bytes, train_csv, eval_csv, media_root
):
    card = {**CARD, **{name: "   " for name in REQUIRED}}
    with pytest.raises(SubmissionInvalid) as refused:
        make_version(data_scientist, registered_model, skops_bytes, train_csv, eval_csv, card=card)
    assert set(refused.value.errors) == set(REQUIRED)
    for name in REQUIRED:
        assert name in refused.value.message
    assert "out-of-scope uses section is required" in " ".join(refused.value.errors["out_of_scope_uses"])
    assert ModelVersion.objects.count() == 0 and ModelCard.objects.count() == 0
    assert stored_files(media_root) == []


def test_a_submission_without_a_card_names_every_required_section(
    data_scientist, registered_model, skops_bytes, train_csv, eval_csv
):
    with pytest.raises(SubmissionInvalid) as refused:
        make_version(data_scientist, registered_model, skops_bytes, train_csv, eval_csv, card=None)
    assert set(refused.value.errors) == set(REQUIRED)


@pytest.mark.parametrize("missing", REQUIRED)
def test_the_api_refuses_a_version_missing_one_section_naming_it(
    api_client, data_scientist, registered_model, skops_bytes, train_csv, eval_csv, media_root, missing
):
    api_client.force_authenticate(data_scientist)
    response = post_version(api_client, registered_model.name, skops_bytes, train_csv, eval_csv, **{missing: ""})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_submission" and set(error["details"]) == {missing}
    assert missing in error["message"]
    assert ModelVersion.objects.count() == 0 and stored_files(media_root) == []


def test_the_other_sections_may_stay_blank(data_scientist, registered_model, skops_bytes, train_csv, eval_csv):
    card = {**CARD, "model_details": "", "evaluation_data_notes": "", "training_data_notes": ""}
    version = make_version(data_scientist, registered_model, skops_bytes, train_csv, eval_csv, card=card)
    assert version.card.model_details == "" and version.card.training_data_notes.startswith("Dataset ")


def test_a_draft_edit_cannot_blank_a_required_section(data_scientist, draft_version):
    before = draft_version.card.content_hash()
    with pytest.raises(SubmissionInvalid) as refused:
        services.update_draft(
            draft_version.pk,
            actor=data_scientist,
            card={**CARD, "ethical_considerations": "", "factors": ""},
            sensitive_features=["sex"],
        )
    assert set(refused.value.errors) == {"ethical_considerations", "factors"}
    draft_version.refresh_from_db()
    assert draft_version.card.content_hash() == before and draft_version.sensitive_features == ["sex", "age_group"]


def test_the_form_shows_the_missing_section_beside_its_field(client, data_scientist, draft_version):
    client.force_login(data_scientist)
    response = client.post(
        "/registry/models/credit-risk/versions/1/edit/", {**CARD, "metrics": "", "sensitive_features": "sex"}
    )
    assert response.status_code == 400
    assert "metrics section is required" in " ".join(response.context["form"].errors["metrics"])
