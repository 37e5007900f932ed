"""The state machine: every transition through governance.workflow, audited, with its rules."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.models import AuditEvent
from core.roles import DATA_SCIENTISTS, RISK_OFFICERS
from governance import operations, selectors, tasks, workflow
from governance.errors import WorkflowError
from governance.models import CheckRun, Decision, Deployment
from lifecycle.errors import Forbidden
from lifecycle.models import ModelVersion, Status
from tests.conftest import make_version
from tests.factories import UserFactory
from tests.governance.conftest import submit, validated
from tests.ledger import triggers_dropped

pytestmark = pytest.mark.django_db
OK = "Reviewed the card, the checks and the lineage."


def events(action: str, version: ModelVersion | None = None):
    qs = AuditEvent.objects.filter(action=action)
    return qs.filter(target_id=str(version.pk)) if version else qs


# --- submission and checks -------------------------------------------------------------
def test_submit_moves_a_draft_to_checking_with_one_audit_event(draft_version, data_scientist):
    version = workflow.submit_version(draft_version.pk, actor=data_scientist)
    assert version.status == Status.CHECKING and version.review_round == 1
    assert version.submitted_by == data_scientist and version.submitted_at is not None
    event = events("lifecycle.version.submitted", version).get()
    assert event.actor == data_scientist
    assert event.data["artifact_sha256"] == version.artifact_sha256
    assert event.data["card_sha256"] == version.card.content_hash()
    assert sorted(CheckRun.objects.filter(version=version).values_list("kind", "status")) == [
        ("fairness", "queued"),
        ("onnx", "queued"),
        ("profile", "queued"),
        ("reproducibility", "queued"),
        ("validation", "queued"),
    ]


def test_finished_checks_move_the_version_to_in_review(in_review):
    runs = {c.kind: c for c in CheckRun.objects.filter(version=in_review)}
    assert runs["validation"].status == "passed"
    assert runs["validation"].metrics["metrics"]["accuracy"] > 0.7
    assert set(runs["validation"].metrics["metrics"]) == {"accuracy", "balanced_accuracy", "roc_auc", "f1"}
    assert runs["fairness"].metrics["features"][0]["feature"] == "sex"
    assert runs["reproducibility"].metrics["agreement"] == 1.0
    assert runs["validation"].policy["min_accuracy"] == 0.7
    assert all(r.finished_at and r.duration_ms is not None and r.attempts == 1 for r in runs.values())
    assert runs["validation"].inputs["evaluation_dataset_sha256"] == in_review.evaluation_dataset.sha256
    assert runs["onnx"].status == "passed" and runs["onnx"].metrics["max_probability_difference"] <= 1e-5
    assert runs["onnx"].gating is False and len(runs["onnx"].metrics["onnx_sha256"]) == 64
    assert events("governance.check.finished", in_review).count() == 5
    assert events("governance.version.in_review", in_review).count() == 1


def test_a_redelivered_check_never_duplicates_its_result(in_review):
    check = CheckRun.objects.get(version=in_review, kind="validation")
    assert tasks.run_check_task(check.pk) == "already finished"
    assert events("governance.check.finished", in_review).count() == 5
    assert CheckRun.objects.filter(version=in_review).count() == 5


def test_a_check_that_died_while_running_is_run_again_once(draft_version, data_scientist, lenient_policy):
    workflow.submit_version(draft_version.pk, actor=data_scientist)  # on_commit tasks not run here
    check = CheckRun.objects.get(version=draft_version, kind="validation")
    CheckRun.objects.filter(pk=check.pk).update(status="running", attempts=1)  # a worker died mid-check
    assert tasks.run_check_task(check.pk) == "passed"
    assert tasks.run_check_task(check.pk) == "already finished"
    check.refresh_from_db()
    assert check.attempts == 2 and check.status == "passed"
    assert events("governance.check.finished", draft_version).count() == 1


def test_the_default_policy_fails_the_demo_model_on_fairness(
    draft_version, data_scientist, django_capture_on_commit_callbacks, eager_tasks
):
    version = submit(draft_version, data_scientist, django_capture_on_commit_callbacks)
    fairness = CheckRun.objects.get(version=version, kind="fairness")
    assert version.status == Status.IN_REVIEW and fairness.status == "failed"
    assert any("demographic_parity_difference" in v for v in fairness.metrics["features"][0]["violations"])


# --- approvals -------------------------------------------------------------------------
def test_low_tier_needs_one_approval(in_review, risk_officer):
    version = workflow.approve_version(in_review.pk, actor=risk_officer, justification=OK)
    assert version.status == Status.APPROVED
    decision = Decision.objects.get(version=version, kind="approve")
    assert decision.artifact_sha256 == version.artifact_sha256
    assert decision.card_sha256 == version.card.content_hash() and len(decision.checks_sha256) == 64
    assert events("governance.version.approved", version).get().actor == risk_officer


def test_high_tier_needs_two_different_officers(in_review, risk_officer, second_officer):
    in_review.registered_model.risk_tier = "high"
    in_review.registered_model.save()
    validated(in_review)  # the policy's default: high-tier approval needs a validation report
    assert workflow.approve_version(in_review.pk, actor=risk_officer, justification=OK).status == Status.IN_REVIEW
    with pytest.raises(WorkflowError, match="already approved"):
        workflow.approve_version(in_review.pk, actor=risk_officer, justification=OK)
    assert ModelVersion.objects.get(pk=in_review.pk).status == Status.IN_REVIEW
    version = workflow.approve_version(in_review.pk, actor=second_officer, justification=OK)
    assert version.status == Status.APPROVED
    assert events("governance.version.approved", version).get().data["approvers"] == ["rita", "omar"]


def test_submitter_cannot_approve_even_when_also_a_risk_officer(
    registered_model,
    skops_bytes,
    train_csv,
    eval_csv,
    django_capture_on_commit_callbacks,
    eager_tasks,
    lenient_policy,
):
    both = UserFactory(username="bea", roles=[DATA_SCIENTISTS, RISK_OFFICERS])
    version = submit(
        make_version(both, registered_model, skops_bytes, train_csv, eval_csv), both, django_capture_on_commit_callbacks
    )
    with pytest.raises(Forbidden, match="four-eyes"):
        workflow.approve_version(version.pk, actor=both, justification=OK)
    assert ModelVersion.objects.get(pk=version.pk).status == Status.IN_REVIEW
    assert events("governance.action.refused", version).get().actor == both


def test_the_database_refuses_an_approval_by_the_submitter(in_review, data_scientist):
    with pytest.raises(IntegrityError), transaction.atomic():
        Decision.objects.create(
            version=in_review,
            round=1,
            kind="approve",
            actor=data_scientist,
            actor_username="dana",
            submitter=data_scientist,
            justification=OK,
        )


def test_a_failed_check_blocks_approval_without_override(
    draft_version, data_scientist, risk_officer, django_capture_on_commit_callbacks, eager_tasks
):
    version = submit(draft_version, data_scientist, django_capture_on_commit_callbacks)  # fairness fails
    with pytest.raises(WorkflowError, match="fairness: failed.*override"):
        workflow.approve_version(version.pk, actor=risk_officer, justification=OK)
    assert events("governance.action.refused", version).count() == 1
    approved = workflow.approve_version(
        version.pk, actor=risk_officer, justification="Accepted: pilot only.", override=True
    )
    assert approved.status == Status.APPROVED
    decision = Decision.objects.get(version=version, kind="approve")
    assert decision.override is True
    assert events("governance.version.approval_recorded", version).get().data["override"] is True


def test_a_justification_is_required(in_review, risk_officer):
    with pytest.raises(WorkflowError, match="justification"):
        workflow.approve_version(in_review.pk, actor=risk_officer, justification="   ")


@pytest.mark.parametrize("persona", ["data_scientist", "auditor", "outsider", "second_scientist"])
def test_only_risk_officers_decide(request, in_review, persona):
    actor = request.getfixturevalue(persona)
    for action in (workflow.approve_version, workflow.reject_version, workflow.request_changes):
        with pytest.raises(Forbidden):
            action(in_review.pk, actor=actor, justification=OK)
    assert ModelVersion.objects.get(pk=in_review.pk).status == Status.IN_REVIEW
    assert events("governance.action.refused", in_review).filter(actor=actor).count() == 3


def test_changing_the_card_after_approval_voids_the_approval(in_review, risk_officer, as_dba):
    version = workflow.approve_version(in_review.pk, actor=risk_officer, justification=OK)
    card = version.card
    card.intended_use = "Now also for automated rejections."  # changed behind the workflow's back
    card.save()
    with pytest.raises(WorkflowError, match="0 valid approval"):
        workflow.deploy_version(version.pk, actor=risk_officer, justification="Go live.")
    assert ModelVersion.objects.get(pk=version.pk).status == Status.APPROVED


def test_a_tampered_artifact_cannot_be_deployed(in_review, risk_officer):
    version = workflow.approve_version(in_review.pk, actor=risk_officer, justification=OK)
    with open(version.artifact.path, "ab") as handle:
        handle.write(b"x")
    with pytest.raises(WorkflowError, match="changed after upload"):
        workflow.deploy_version(version.pk, actor=risk_officer, justification="Go live.")


def test_reject_and_request_changes(
    in_review, risk_officer, data_scientist, django_capture_on_commit_callbacks, eager_tasks
):
    version = workflow.request_changes(in_review.pk, actor=risk_officer, justification="Document the age cut-off.")
    assert version.status == Status.DRAFT
    version = submit(version, data_scientist, django_capture_on_commit_callbacks)
    assert version.review_round == 2 and version.status == Status.IN_REVIEW
    assert CheckRun.objects.filter(version=version).count() == 10
    rejected = workflow.reject_version(version.pk, actor=risk_officer, justification="Not fit for purpose.")
    assert rejected.status == Status.REJECTED
    assert [d.kind for d in Decision.objects.filter(version=version)] == ["request_changes", "reject"]
    with pytest.raises(WorkflowError):
        workflow.submit_version(version.pk, actor=data_scientist)


# --- deployment ------------------------------------------------------------------------
@pytest.fixture
def two_approved(
    in_review, risk_officer, data_scientist, skops_bytes, train_csv, eval_csv, django_capture_on_commit_callbacks
):
    first = workflow.approve_version(in_review.pk, actor=risk_officer, justification=OK)
    second = make_version(
        data_scientist, in_review.registered_model, skops_bytes, train_csv, eval_csv, parent_version=1
    )
    second = submit(second, data_scientist, django_capture_on_commit_callbacks)
    second = workflow.approve_version(second.pk, actor=risk_officer, justification=OK)
    return first, second


def test_deploy_moves_the_previous_production_version_back_to_approved(two_approved, risk_officer):
    first, second = two_approved
    before = timezone.now()
    workflow.deploy_version(first.pk, actor=risk_officer, justification="Initial release.")
    middle = timezone.now()
    workflow.deploy_version(second.pk, actor=risk_officer, justification="Better calibrated.")
    assert ModelVersion.objects.get(pk=first.pk).status == Status.APPROVED
    assert ModelVersion.objects.get(pk=second.pk).status == Status.PRODUCTION
    model = first.registered_model
    assert selectors.deployment_at(model, middle).version == first
    assert selectors.deployment_at(model, timezone.now()).version == second
    assert selectors.deployment_at(model, before - timedelta(seconds=1)) is None
    assert Deployment.objects.get(version=first).end_reason == "replaced"


def test_rollback_restores_the_previously_deployed_version(two_approved, risk_officer):
    first, second = two_approved
    workflow.deploy_version(first.pk, actor=risk_officer, justification="Initial release.")
    workflow.deploy_version(second.pk, actor=risk_officer, justification="Better calibrated.")
    restored = operations.rollback_model(first.registered_model_id, actor=risk_officer, justification="Drift alarm.")
    assert restored == first and ModelVersion.objects.get(pk=first.pk).status == Status.PRODUCTION
    assert ModelVersion.objects.get(pk=second.pk).status == Status.APPROVED
    assert events("governance.model.rolled_back").get().data == {
        **events("governance.model.rolled_back").get().data,
        "from_version": 2,
        "to_version": 1,
    }


def test_retire_stops_a_production_version(two_approved, risk_officer):
    first, _ = two_approved
    workflow.deploy_version(first.pk, actor=risk_officer, justification="Initial release.")
    retired = operations.retire_version(first.pk, actor=risk_officer, justification="Replaced by a new product.")
    assert retired.status == Status.RETIRED and not retired.is_servable
    assert Deployment.objects.get(version=first).end_reason == "retired"
    with pytest.raises(WorkflowError):
        workflow.deploy_version(first.pk, actor=risk_officer, justification="Back?")


def test_only_one_production_version_is_possible_in_the_database(two_approved):
    first, second = two_approved
    ModelVersion.objects.filter(pk=first.pk).update(status=Status.PRODUCTION)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=second.pk).update(status=Status.PRODUCTION)


# --- every transition ------------------------------------------------------------------
ACTIONS = {
    "submit": lambda v, ds, ro: workflow.submit_version(v.pk, actor=ds),
    "approve": lambda v, ds, ro: workflow.approve_version(v.pk, actor=ro, justification=OK, override=True),
    "reject": lambda v, ds, ro: workflow.reject_version(v.pk, actor=ro, justification=OK),
    "request_changes": lambda v, ds, ro: workflow.request_changes(v.pk, actor=ro, justification=OK),
    "deploy": lambda v, ds, ro: workflow.deploy_version(v.pk, actor=ro, justification=OK),
    "retire": lambda v, ds, ro: operations.retire_version(v.pk, actor=ro, justification=OK),
}
ALLOWED = {
    ("draft", "submit"): "checking",
    ("in_review", "approve"): "approved",
    ("in_review", "reject"): "rejected",
    ("in_review", "request_changes"): "draft",
    ("approved", "deploy"): "production",
    ("approved", "retire"): "retired",
    ("production", "retire"): "retired",
    ("suspended", "retire"): "retired",
}


@pytest.mark.parametrize("status", [s.value for s in Status])
@pytest.mark.parametrize("action", list(ACTIONS))
def test_every_transition_is_allowed_or_refused_and_audited(
    status, action, in_review, data_scientist, risk_officer, eager_tasks
):
    from governance import bindings

    version = in_review
    if status in ("approved", "production"):
        workflow.approve_version(version.pk, actor=risk_officer, justification=OK)
    with triggers_dropped():  # (a shortcut to each status, as a DBA: the database refuses most moves)
        ModelVersion.objects.filter(pk=version.pk).update(status=status)
    version.refresh_from_db()
    assert len(bindings.valid_approvals(version)) == (1 if status in ("approved", "production") else 0)
    expected = ALLOWED.get((status, action))
    if expected:
        result = ACTIONS[action](version, data_scientist, risk_officer)
        assert result.status == expected
    else:
        refused_before = events("governance.action.refused", version).count()
        with pytest.raises(WorkflowError):
            ACTIONS[action](version, data_scientist, risk_officer)
        assert ModelVersion.objects.get(pk=version.pk).status == status
        assert events("governance.action.refused", version).count() == refused_before + 1


def test_policy_changes_are_audited(risk_officer):
    from governance.policies import active_policy, update_policy

    policy = active_policy()
    update_policy(policy.pk, actor=risk_officer, justification="Set for this test.", changes={"min_accuracy": 0.8})
    event = events("governance.policy.changed").get()
    assert event.data["changes"] == {"min_accuracy": {"before": 0.7, "after": 0.8}}
    with pytest.raises(Forbidden):
        update_policy(
            policy.pk,
            actor=UserFactory(username="x", roles=[DATA_SCIENTISTS]),
            changes={"min_f1": 0},
            justification="Why not.",
        )
