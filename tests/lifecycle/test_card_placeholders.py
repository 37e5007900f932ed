"""Required model-card sections hold real text: a bracketed "to be completed" note, TBD, TODO,
lorem ipsum or fewer than three words is refused, naming the section, at creation, at a draft
edit and at submission (a draft saved before the rule)."""

from __future__ import annotations

import pytest

from governance import workflow
from governance.errors import WorkflowError
from lifecycle import services, submission
from lifecycle.errors import SubmissionInvalid
from lifecycle.models import ModelCard, ModelVersion
from tests.conftest import CARD, make_version

pytestmark = pytest.mark.django_db

PLACEHOLDERS = {
    "intended_use": "[To be completed by the data scientist: imported from MLflow run 42.]",
    "out_of_scope_uses": "TBD",
    "factors": "TODO: list the factors later",
    "metrics": "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
    "ethical_considerations": "None known.",
    "caveats_and_recommendations": "<to be written>",
}


@pytest.mark.parametrize("section", sorted(PLACEHOLDERS))
def test_a_placeholder_in_a_required_section_is_refused_naming_it(
    data_scientist, registered_model, skops_bytes, train_csv, eval_csv, section
):
    card = {**CARD, section: PLACEHOLDERS[section]}
    with pytest.raises(SubmissionInvalid) as refused:
        make_version(data_scientist, registered_model, skops_bytes, train_csv, eval_csv, card=card)
    assert set(refused.value.errors) == {section}
    assert "placeholder" in " ".join(refused.value.errors[section]) or "three words" in " ".join(
        refused.value.errors[section]
    )
    assert ModelVersion.objects.count() == 0


def test_real_text_mentioning_todo_lists_is_not_a_placeholder():
    assert submission.card_section_problem("factors", "Applicants' age, sex and employment status.") == ""
    assert submission.card_section_problem("factors", "Used to build a to-do list of reviews.") == ""
    assert submission.card_section_problem("factors", "See [the appendix] for the factors used.") == ""


def test_a_draft_edit_cannot_put_a_placeholder(data_scientist, draft_version):
    with pytest.raises(SubmissionInvalid) as refused:
        services.update_draft(
            draft_version.pk, actor=data_scientist, card={**CARD, "metrics": "TBD"}, sensitive_features=["sex"]
        )
    assert set(refused.value.errors) == {"metrics"}


def test_submission_refuses_a_draft_whose_card_holds_a_placeholder_naming_the_section(data_scientist, draft_version):
    ModelCard.objects.filter(version=draft_version).update(ethical_considerations="[To be completed]")
    with pytest.raises(WorkflowError) as refused:
        workflow.submit_version(draft_version.pk, actor=data_scientist)
    assert "Ethical considerations" in refused.value.message
    draft_version.refresh_from_db()
    assert draft_version.status == "draft"
