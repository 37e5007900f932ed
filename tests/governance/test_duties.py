"""Segregation of duties for a model's risk tier: risk officers set it, never the model's owner
nor a creator or submitter of any of its versions; the service, the API and the admin ask the
same rule (governance.rules.can_set_tier)."""

from __future__ import annotations

import pytest

from core.errors import Forbidden
from core.models import AuditEvent
from core.role_changes import grant_role
from core.roles import RISK_OFFICERS
from governance import services
from governance.errors import WorkflowError
from lifecycle.models import RegisteredModel
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def make_officer(user):
    grant_role(user, RISK_OFFICERS, actor=None, justification="also an officer in this test")
    user.is_staff = True
    user.save()
    return user


def tier_of(model):
    return RegisteredModel.objects.get(pk=model.pk).effective_tier


def test_the_owner_who_is_also_an_officer_cannot_set_her_models_tier(registered_model, data_scientist):
    make_officer(data_scientist)
    with pytest.raises(WorkflowError) as refused:
        services.set_risk_tier(registered_model.pk, actor=data_scientist, tier="low", justification="Small loans.")
    assert refused.value.status == 409 and "own" in refused.value.message
    assert tier_of(registered_model) == "medium"
    assert not AuditEvent.objects.filter(action="governance.risk_tier.set").exists()


def test_a_creator_or_submitter_of_any_version_cannot_set_the_tier(draft_version, second_scientist, risk_officer):
    model = draft_version.registered_model
    model.owner = UserFactory(username="owen")
    model.save()
    # the creator (dana) became an officer later: still refused
    creator = make_officer(draft_version.created_by)
    with pytest.raises(WorkflowError, match="created or submitted"):
        services.set_risk_tier(model.pk, actor=creator, tier="low", justification="Small loans.")
    # a submitter who did not create it
    draft_version.submitted_by = make_officer(second_scientist)
    draft_version.save(update_fields=["submitted_by"])
    with pytest.raises(WorkflowError, match="created or submitted"):
        services.set_risk_tier(model.pk, actor=second_scientist, tier="low", justification="Small loans.")
    assert tier_of(model) == "medium"
    services.set_risk_tier(model.pk, actor=risk_officer, tier="high", justification="Credit decisions on people.")
    assert tier_of(model) == "high"


def test_tier_api_role_fields_and_the_rule(api_client, registered_model, data_scientist, risk_officer):
    url = f"/api/v1/models/{registered_model.name}/tier"
    api_client.force_authenticate(data_scientist)
    response = api_client.post(url, {"tier": "low", "justification": "Small loans."}, format="json")
    assert response.status_code == 403, response.content
    api_client.force_authenticate(risk_officer)
    response = api_client.post(url, {"tier": "tiny", "justification": "Small loans."}, format="json")
    assert response.status_code == 400 and "tier" in response.json()["error"]["details"]
    response = api_client.post(url, {"tier": "low"}, format="json")
    assert response.status_code == 400 and "justification" in response.json()["error"]["details"]
    # the owner, also an officer: the rule (409), not the role
    api_client.force_authenticate(make_officer(data_scientist))
    response = api_client.post(url, {"tier": "low", "justification": "Small loans."}, format="json")
    assert response.status_code == 409, response.content
    assert tier_of(registered_model) == "medium"
    api_client.force_authenticate(risk_officer)
    response = api_client.post(url, {"tier": "high", "justification": "Credit decisions on people."}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["effective_risk_tier"] == "high" and tier_of(registered_model) == "high"
    assert api_client.post("/api/v1/models/nope/tier", {"tier": "high", "justification": "x y z"}).status_code == 404


def test_the_admin_tier_form_asks_the_same_rule(client, draft_version, data_scientist):
    make_officer(data_scientist)
    client.force_login(data_scientist)
    response = client.post(
        f"/admin/governance/versionreview/{draft_version.pk}/decide/",
        {"action": "set_tier", "tier": "low", "justification": "Small loans."},
        follow=True,
    )
    assert "Refused" in response.content.decode()
    assert tier_of(draft_version.registered_model) == "medium"


def test_a_data_scientist_is_refused_by_the_service_for_the_role(registered_model, second_scientist):
    with pytest.raises(Forbidden):
        services.set_risk_tier(registered_model.pk, actor=second_scientist, tier="low", justification="Cheaper.")
