"""Fairness on real evidence: risk officers require sensitive features per model (the data
scientist may add, never remove), checked at submission; a group below the policy's minimum size
is named in the check's evidence and makes it inconclusive unless an officer waived it, with a
justification, for that model."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import Forbidden
from core.models import AuditEvent
from core.role_changes import grant_role
from core.roles import RISK_OFFICERS
from governance import checks, fairness, services, workflow
from governance.errors import WorkflowError
from governance.policies import active_policy
from lifecycle import demo_data

pytestmark = pytest.mark.django_db

WAIVER = "The 25 applicants from the islands are too few to measure; reviewed by hand each quarter."


def islands_frame(german, logreg):
    """The evaluation data with a region whose 25-row group the model never selects."""
    evaluation = german[1].reset_index(drop=True).copy()
    features = evaluation[demo_data.NUMERIC + demo_data.CATEGORICAL]
    negative = np.flatnonzero(logreg.predict(features) != 1)[:25]
    evaluation["region"] = np.where(np.arange(len(evaluation)) % 2 == 0, "north", "south")
    evaluation.loc[negative, "region"] = "islands"
    return evaluation


def test_a_small_group_never_selected_makes_fairness_inconclusive_naming_it(german, logreg):
    evaluation = islands_frame(german, logreg)
    y_pred = logreg.predict(evaluation[demo_data.NUMERIC + demo_data.CATEGORICAL])
    result = fairness.assess(
        evaluation,
        ["region"],
        evaluation["risk"].to_numpy(),
        np.asarray(y_pred),
        task="classification",
        classes=[0, 1],
        thresholds=fairness.Thresholds(max_difference=1.0, min_ratio=0.0, min_group_size=30),
    )
    assert result.status == "inconclusive"
    feature = result.as_dict()["features"][0]
    assert feature["small_groups"] == ["islands"] and feature["status"] == "inconclusive"
    assert feature["groups"]["islands"]["selection_rate"] == 0.0
    assert any("islands" in note and "25" in note for note in result.notes)
    waived = fairness.assess(
        evaluation,
        ["region"],
        evaluation["risk"].to_numpy(),
        np.asarray(y_pred),
        task="classification",
        classes=[0, 1],
        thresholds=fairness.Thresholds(max_difference=1.0, min_ratio=0.0, min_group_size=30),
        waived={"region": {"islands": WAIVER}},
    )
    assert waived.status == "passed"
    assert waived.as_dict()["features"][0]["waived_groups"] == {"islands": WAIVER}


def test_the_fairness_check_reads_the_officers_waiver_for_the_model(draft_version, logreg, german, risk_officer):
    evaluation = islands_frame(german, logreg)
    draft_version.sensitive_features = ["region"]
    policy = {**active_policy().values(), "max_fairness_difference": 1.0, "min_fairness_ratio": 0.0}
    outcome = checks.assess_fairness(logreg, draft_version, evaluation, policy)
    assert outcome.status == "inconclusive" and "islands" in str(outcome.metrics["notes"])
    services.set_fairness_requirements(
        draft_version.registered_model_id,
        actor=risk_officer,
        features=[],
        waivers={"region": {"islands": WAIVER}},
        justification="Islands are a known small population.",
    )
    outcome = checks.assess_fairness(logreg, draft_version, evaluation, policy)
    assert outcome.status == "passed"
    assert outcome.metrics["features"][0]["waived_groups"] == {"islands": WAIVER}
    event = AuditEvent.objects.get(action="governance.fairness_requirements.set")
    assert event.data["waivers"] == {"region": {"islands": WAIVER}}


def test_an_officer_required_feature_missing_is_refused_at_submission_naming_it(
    draft_version, data_scientist, risk_officer
):
    model = draft_version.registered_model
    with pytest.raises(Forbidden):
        services.set_fairness_requirements(
            model.pk, actor=data_scientist, features=[], waivers={}, justification="Remove them."
        )
    services.set_fairness_requirements(
        model.pk, actor=risk_officer, features=["age_group", "job"], waivers={}, justification="Age and job matter."
    )
    draft_version.sensitive_features = ["sex", "age_group"]  # the data scientist added sex, left out job
    draft_version.save(update_fields=["sensitive_features"])
    with pytest.raises(WorkflowError) as refused:
        workflow.submit_version(draft_version.pk, actor=data_scientist)
    assert "job" in refused.value.message and "age_group" not in refused.value.message.split("required:")[-1]
    draft_version.refresh_from_db()
    assert draft_version.status == "draft"


def test_the_models_owner_cannot_set_its_fairness_requirements(draft_version, data_scientist):
    grant_role(data_scientist, RISK_OFFICERS, actor=None, justification="also an officer in this test")
    with pytest.raises(WorkflowError, match="own"):
        services.set_fairness_requirements(
            draft_version.registered_model_id, actor=data_scientist, features=[], waivers={}, justification="None."
        )


def test_requirements_name_bad_input(draft_version, risk_officer):
    model_id = draft_version.registered_model_id
    with pytest.raises(WorkflowError) as bad:
        services.set_fairness_requirements(model_id, actor=risk_officer, features=["sex"], waivers={}, justification="")
    assert bad.value.field == "justification" and bad.value.status == 400
    with pytest.raises(WorkflowError) as bad:
        services.set_fairness_requirements(
            model_id, actor=risk_officer, features=[], waivers={"region": {"islands": ""}}, justification="Ok then."
        )
    assert bad.value.field == "waivers" and "islands" in bad.value.message


def test_the_api_sets_requirements_for_officers_only(api_client, draft_version, data_scientist, risk_officer):
    url = f"/api/v1/models/{draft_version.registered_model.name}/fairness-requirements"
    body = {"features": ["age_group"], "waivers": {}, "justification": "Age matters for credit."}
    api_client.force_authenticate(data_scientist)
    assert api_client.post(url, body, format="json").status_code == 403
    api_client.force_authenticate(risk_officer)
    response = api_client.post(url, body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["features"] == ["age_group"]
