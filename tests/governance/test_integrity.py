"""The approval holds at every answer: a void approval suspends the version and serving refuses
it; four eyes for real; the risk tier is set by officers and bound into approvals; every
evidence row is proven by the audit chain; outcomes only from who may report them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction

from core.errors import Forbidden
from core.models import AuditEvent
from governance import integrity, operations, services, tasks, workflow
from governance.models import CheckRun, Decision, Deployment, Policy
from lifecycle.models import ModelCard, ModelVersion, Status
from serving.models import PredictionLog, PredictionOutcome
from tests.serving.conftest import OK, checked, rows

pytestmark = pytest.mark.django_db

# Every test here edits governed rows behind the services, as a DBA with the triggers dropped would.
pytestmark = pytest.mark.usefixtures("as_dba")


def predict_v1(client: Any, version: ModelVersion, german: Any) -> Any:
    return client.post(
        f"/api/v1/models/{version.registered_model.name}/predict", {"instances": rows(german, 1)}, format="json"
    )


def infer_v2(client: Any, version: ModelVersion, german: Any) -> Any:
    row = rows(german, 1)[0]
    dtypes = {c["name"]: c["dtype"] for c in version.input_schema}
    kinds = {"float64": "FP64", "int64": "INT64", "string": "BYTES", "bool": "BOOL"}
    inputs = [{"name": n, "datatype": kinds[dtypes[n]], "shape": [1], "data": [v]} for n, v in row.items()]
    return client.post(f"/v2/models/{version.registered_model.name}/infer", {"inputs": inputs}, format="json")


def test_a_production_version_whose_card_changed_is_suspended_and_refused_on_both_apis(production, keyed, german):
    assert predict_v1(keyed, production, german).status_code == 200
    ModelCard.objects.filter(version=production).update(intended_use="Anything at all, changed behind the workflow.")
    suspended = integrity.suspend_void_versions()
    assert [s.version.pk for s in suspended] == [production.pk]
    production.refresh_from_db()
    assert production.status == Status.SUSPENDED
    event = AuditEvent.objects.filter(action="governance.version.suspended").get()
    assert event.data["changed"] == ["the model card"] and event.actor_username == "system"
    v1 = predict_v1(keyed, production, german)
    assert v1.status_code == 403 and v1.json()["error"]["code"] == "version_not_servable"
    assert "suspended" in v1.json()["error"]["message"] and "the model card" in v1.json()["error"]["message"]
    v2 = infer_v2(keyed, production, german)
    assert v2.status_code == 403 and "the model card" in v2.json()["error"]
    named = keyed.post(
        f"/api/v1/models/{production.registered_model.name}/predict",
        {"instances": rows(german, 1), "version": production.version},
        format="json",
    )
    assert named.status_code == 403 and "the model card" in named.json()["error"]["message"]
    assert Deployment.objects.get(version=production).end_reason == "suspended"


def test_a_changed_artifact_file_suspends_the_version_through_the_periodic_task(production, keyed, german):
    with production.artifact.open("wb") as handle:
        handle.write(b"not the approved bytes")
    assert tasks.integrity_check_task() == [production.pk]
    production.refresh_from_db()
    assert production.status == Status.SUSPENDED
    assert "the stored artifact's bytes" in production.suspended_reason
    assert predict_v1(keyed, production, german).status_code == 403


def test_verify_audit_suspends_a_version_whose_approval_is_void_and_fails_naming_the_row(production, capsys):
    card = ModelCard.objects.get(version=production)
    ModelCard.objects.filter(pk=card.pk).update(factors="edited")
    # a changed governed row is tampering, not news: the command exits non-zero
    with pytest.raises(CommandError) as failed:
        call_command("verify_audit")
    assert f"Suspended {production}" in capsys.readouterr().out
    assert ModelVersion.objects.get(pk=production.pk).status == Status.SUSPENDED
    assert f"lifecycle.modelcard:{card.pk} differs from what audit event" in str(failed.value)


def test_an_intact_production_version_is_not_suspended(production):
    assert integrity.suspend_void_versions() == []
    assert ModelVersion.objects.get(pk=production.pk).status == Status.PRODUCTION


def test_a_suspended_version_is_reinstated_only_once_the_cause_is_gone(production, risk_officer, second_officer):
    card = ModelCard.objects.get(version=production)
    original = card.factors
    ModelCard.objects.filter(pk=card.pk).update(factors="edited")
    integrity.suspend_void_versions()
    with pytest.raises(Exception, match="still void"):
        operations.reinstate_version(production.pk, actor=second_officer, justification=OK)
    ModelCard.objects.filter(pk=card.pk).update(factors=original)
    version = operations.reinstate_version(production.pk, actor=second_officer, justification="Card restored.")
    assert version.status == Status.APPROVED and version.suspended_reason == ""


def test_rollback_to_a_version_whose_approval_is_void_is_refused(
    production, second_version, data_scientist, risk_officer
):
    second = checked(second_version, data_scientist)
    workflow.approve_version(second.pk, actor=risk_officer, justification=OK)
    workflow.deploy_version(second.pk, actor=risk_officer, justification="v2 live.")
    ModelCard.objects.filter(version=production).update(factors="edited behind the workflow")
    with pytest.raises(Exception, match="no longer holds"):
        operations.rollback_model(second.registered_model_id, actor=risk_officer, justification="Back.")
    assert ModelVersion.objects.get(pk=second.pk).status == Status.PRODUCTION


def test_the_creator_cannot_approve_after_a_colleague_submitted(
    draft_version, data_scientist, second_scientist, risk_officer
):
    from core.role_changes import grant_role
    from core.roles import RISK_OFFICERS

    version = checked(draft_version, second_scientist)  # a colleague submits
    assert version.created_by == data_scientist and version.submitted_by == second_scientist
    grant_role(data_scientist, RISK_OFFICERS, actor=risk_officer, justification="Also reviews other teams.")
    with pytest.raises(Forbidden, match="You created this version"):
        workflow.approve_version(version.pk, actor=data_scientist, justification=OK)
    with pytest.raises(IntegrityError), transaction.atomic():  # the database refuses it too
        Decision.objects.create(
            version=version,
            round=version.review_round,
            kind="approve",
            actor=data_scientist,
            actor_username=data_scientist.username,
            submitter=second_scientist,
            creator=data_scientist,
            justification=OK,
        )


def test_an_officer_sets_the_effective_tier_and_approvals_bind_it(
    production, risk_officer, second_officer, data_scientist
):
    model = production.registered_model
    assert model.risk_tier == model.effective_tier == "medium"
    with pytest.raises(Forbidden):
        services.set_risk_tier(model.pk, actor=data_scientist, tier="low", justification="cheaper")
    services.set_risk_tier(model.pk, actor=risk_officer, tier="high", justification="Credit decisions on people.")
    model.refresh_from_db()
    assert model.risk_tier == "medium" and model.effective_tier == "high"
    event = AuditEvent.objects.filter(action="governance.risk_tier.set").get()
    assert event.data["before"] == "medium" and event.data["after"] == "high"
    # the approval was given for "medium": void now, so the version stopped serving at once
    production.refresh_from_db()
    assert production.status == Status.SUSPENDED and "the effective risk tier" in production.suspended_reason


def _verify_fails_naming(row: str) -> None:
    with pytest.raises(CommandError, match=row.replace(".", r"\.")):
        call_command("verify_audit")


@pytest.fixture
def proven(production, keyed, german) -> Any:
    """A deployed version that answered once, with an outcome reported: every kind of evidence."""
    answer = predict_v1(keyed, production, german).json()
    prediction_id = answer["prediction_ids"][0]
    classes = production.classes
    assert (
        keyed.post(f"/api/v1/predictions/{prediction_id}/outcome", {"actual": classes[0]}, format="json").status_code
        == 201
    )
    call_command("verify_audit")  # intact so far
    return production


@pytest.mark.parametrize(
    "edit",
    [
        lambda v: (Decision, Decision.objects.filter(version=v, kind="approve").update(justification="edited")),
        lambda v: (
            Deployment,
            Deployment.objects.filter(version=v).update(deployed_at=v.created_at - timedelta(days=30)),
        ),
        lambda v: (CheckRun, CheckRun.objects.filter(version=v, kind="validation").update(metrics={"accuracy": 1.0})),
        lambda v: (Policy, Policy.objects.update(min_accuracy=0.01)),
        lambda v: (PredictionOutcome, PredictionOutcome.objects.update(actual="something else")),
    ],
    ids=["decision", "deployment", "checkrun", "policy", "outcome"],
)
def test_an_edited_evidence_row_fails_verification_and_the_report(proven, edit, auditor, api_client):
    model, changed = edit(proven)
    assert changed >= 1
    _verify_fails_naming(model._meta.label_lower + ":")
    api_client.force_authenticate(auditor)
    response = api_client.get(f"/api/v1/models/{proven.registered_model.name}/versions/{proven.version}/report.pdf")
    assert response.status_code == 200
    from tests.compliance.test_reports import pdf_text

    text = pdf_text(response.content)
    assert "FAILED" in text and "PASSED" not in text


def test_a_role_granted_behind_the_service_fails_verification(production, data_scientist):
    from django.contrib.auth.models import Group

    from core.roles import RISK_OFFICERS

    data_scientist.groups.add(Group.objects.get(name=RISK_OFFICERS))
    _verify_fails_naming(f"the risk-officers role of user #{data_scientist.pk}")


def test_outcomes_come_only_from_the_key_that_received_the_prediction(production, keyed, client_key, german):
    from rest_framework.test import APIClient

    from serving.services import create_api_key

    prediction_id = predict_v1(keyed, production, german).json()["prediction_ids"][0]
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {create_api_key(actor=None, name='another-client')[1]}")
    refused = other.post(f"/api/v1/predictions/{prediction_id}/outcome", {"actual": 1}, format="json")
    assert refused.status_code == 403
    wrong_class = keyed.post(f"/api/v1/predictions/{prediction_id}/outcome", {"actual": "maybe"}, format="json")
    assert wrong_class.status_code == 400 and wrong_class.json()["error"]["code"] == "invalid_outcome"
    good = keyed.post(f"/api/v1/predictions/{prediction_id}/outcome", {"actual": production.classes[-1]}, format="json")
    assert good.status_code == 201
    event = AuditEvent.objects.filter(action="serving.outcome.recorded").get()
    assert event.data["prediction_id"] == prediction_id and event.data["evidence"][0]["row"].startswith(
        "serving.predictionoutcome:"
    )
    assert PredictionLog.objects.count() >= 1


def test_a_draft_with_a_blank_required_card_section_is_not_submitted(draft_version, data_scientist):
    from governance.errors import WorkflowError

    ModelCard.objects.filter(version=draft_version).update(factors="  ")  # saved before sections were required
    with pytest.raises(WorkflowError, match="required sections first: Factors"):
        workflow.submit_version(draft_version.pk, actor=data_scientist)
    assert ModelVersion.objects.get(pk=draft_version.pk).status == Status.DRAFT
