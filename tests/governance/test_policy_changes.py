"""Policy changes: a written justification, recorded in the audit event, and
risk officers only; a superuser without the role is refused, in the service and in the admin."""

from __future__ import annotations

import pytest

from core.models import AuditEvent
from core.roles import DATA_SCIENTISTS
from governance.errors import WorkflowError
from governance.models import Policy
from governance.policies import active_policy, update_policy
from lifecycle.errors import Forbidden
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

WHY = "Credit committee 2026-12: accuracy floor raised after the Q3 model-risk review."


def changed_events():
    return AuditEvent.objects.filter(action="governance.policy.changed")


def test_a_risk_officer_changes_a_policy_with_a_justification_recorded_in_its_event(risk_officer):
    policy = update_policy(
        active_policy().pk, actor=risk_officer, changes={"min_accuracy": 0.8}, justification=f"  {WHY} "
    )
    assert Policy.objects.get(pk=policy.pk).min_accuracy == 0.8
    event = changed_events().get()
    assert event.actor == risk_officer and event.data["justification"] == WHY
    assert event.data["changes"] == {"min_accuracy": {"before": 0.7, "after": 0.8}}


@pytest.mark.parametrize("justification", ["", "   \n\t", None])
def test_a_change_without_a_justification_is_refused_and_nothing_changes(risk_officer, justification):
    policy = active_policy()
    with pytest.raises(WorkflowError, match="justification is required") as refused:
        update_policy(policy.pk, actor=risk_officer, changes={"min_accuracy": 0.9}, justification=justification)
    assert refused.value.field == "justification"
    assert Policy.objects.get(pk=policy.pk).min_accuracy == 0.7 and not changed_events().exists()


def test_a_superuser_without_the_risk_officer_role_is_refused():
    root = UserFactory(username="root", roles=[], is_superuser=True, is_staff=True)
    scientist = UserFactory(username="x", roles=[DATA_SCIENTISTS])
    policy = active_policy()
    for user in (root, scientist):
        with pytest.raises(Forbidden, match="Only risk officers change policies"):
            update_policy(policy.pk, actor=user, changes={"min_accuracy": 0.1}, justification=WHY)
    assert Policy.objects.get(pk=policy.pk).min_accuracy == 0.7 and not changed_events().exists()


def test_an_unknown_policy_value_is_named(risk_officer):
    with pytest.raises(WorkflowError, match="'min_luck' is not a policy value") as refused:
        update_policy(active_policy().pk, actor=risk_officer, changes={"min_luck": 1}, justification=WHY)
    assert refused.value.field == "min_luck"


def form_data(policy: Policy, **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {k: ("" if v is None else v) for k, v in policy.values().items()}
    return {**data, **overrides}


def test_the_admin_form_asks_for_the_justification_and_records_it(client, risk_officer):
    policy = active_policy()
    url = f"/admin/governance/policy/{policy.pk}/change/"
    client.force_login(risk_officer)
    page = client.get(url).content.decode()
    assert 'name="justification"' in page and "recorded in the audit trail" in page

    refused = client.post(url, form_data(policy, min_accuracy=0.75, justification="  "))
    assert refused.status_code == 200 and "This field is required." in refused.content.decode()
    assert Policy.objects.get(pk=policy.pk).min_accuracy == 0.7 and not changed_events().exists()

    saved = client.post(url, form_data(policy, min_accuracy=0.75, justification=WHY))
    assert saved.status_code == 302, saved.content.decode()[:2000]
    event = changed_events().get()
    assert event.actor == risk_officer and event.data["justification"] == WHY
    assert event.data["changes"]["min_accuracy"] == {"before": 0.7, "after": 0.75}


def test_a_superuser_without_the_role_sees_the_policy_read_only_in_the_admin(client):
    root = UserFactory(username="root", roles=[], is_superuser=True, is_staff=True)
    policy = active_policy()
    url = f"/admin/governance/policy/{policy.pk}/change/"
    client.force_login(root)
    page = client.get(url)
    assert page.status_code == 200 and 'name="justification"' not in page.content.decode()
    response = client.post(url, form_data(policy, min_accuracy=0.1, justification=WHY))
    assert response.status_code == 403
    assert Policy.objects.get(pk=policy.pk).min_accuracy == 0.7 and not changed_events().exists()
