from __future__ import annotations

from typing import Any

import pytest

from core.actors import Actor
from governance import workflow
from governance.models import Policy
from governance.policies import active_policy, update_policy
from lifecycle.models import ModelVersion, Status
from serving.seals import seal_predictions
from serving.services import create_api_key
from tests.serving.conftest import checked, client_key, keyed, production, rows, second_version  # noqa: F401

LONG_JUSTIFICATION = (
    "Approved for the retail portfolio after reading the fairness results per sex and age group; "
    "the selection-rate gap is within the committee's tolerance. "
    + "Monitoring: monthly drift review with the credit committee, escalation to the CRO on any breach. "
    * 6
)


@pytest.fixture
def lenient_policy(db: None) -> Policy:
    """Thresholds every demo model meets, so a test can choose when a check fails."""
    policy = active_policy()
    update_policy(
        policy.pk,
        actor=None,
        justification="Set for this test.",
        changes={"max_fairness_difference": 1.0, "min_fairness_ratio": 0.0},
    )
    policy.refresh_from_db()
    return policy


def submit(version: ModelVersion, actor: Actor, capture: Any) -> ModelVersion:
    with capture(execute=True):
        workflow.submit_version(version.pk, actor=actor)
    version.refresh_from_db()
    return version


@pytest.fixture
def in_review(draft_version, data_scientist, django_capture_on_commit_callbacks, eager_tasks, lenient_policy):
    version = submit(draft_version, data_scientist, django_capture_on_commit_callbacks)
    assert version.status == Status.IN_REVIEW
    return version


@pytest.fixture
def served(draft_version, data_scientist, risk_officer, api_client, german) -> Any:
    """A version checked, approved with a long justification, deployed, that answered five
    requests and refused one, all sealed."""
    policy = active_policy()
    update_policy(
        policy.pk,
        actor=None,
        justification="Set for this test.",
        changes={"max_fairness_difference": 1.0, "min_fairness_ratio": 0.0},
    )
    version = checked(draft_version, data_scientist)
    workflow.approve_version(version.pk, actor=risk_officer, justification=LONG_JUSTIFICATION)
    version = workflow.deploy_version(version.pk, actor=risk_officer, justification="Go live for the pilot.")
    key = create_api_key(actor=None, name="scoring")[1]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    url = f"/api/v1/models/{version.registered_model.name}/predict"
    for i in range(5):
        assert api_client.post(url, {"instances": rows(german, 3)}, format="json").status_code == 200, i
    assert api_client.post(url, {"instances": [{"age": "x"}]}, format="json").status_code == 400
    api_client.credentials()
    assert seal_predictions() is not None
    return version


SECTIONS = {
    "conceptual_soundness": "A regularised logistic regression suits a binary credit outcome.",
    "data": "German credit data, 700 training rows; no leakage of the label found.",
    "outcomes_analysis": "ROC AUC 0.76 against 0.72 for the decision-tree benchmark; stable under shifts.",
    "limitations": "Small 1970s sample; not representative of today's applicants.",
    "compensating_controls": "Monthly drift review; human review of every adverse decision.",
}


def validated(version: ModelVersion, conclusion: str = "fit_for_use", conditions: list[str] | None = None) -> Any:
    """A validation report on the version by an independent validator (created here)."""
    from core.roles import VALIDATORS
    from governance import validation
    from tests.factories import UserFactory

    validator = UserFactory(username="valerie", roles=[VALIDATORS])
    return validation.record_validation(
        version.pk, actor=validator, conclusion=conclusion, sections=dict(SECTIONS), conditions=conditions
    )
