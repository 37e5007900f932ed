"""Each transition writes exactly one audit event of its action, by the person who made it (or
by the system); refused rollbacks and deployments leave one refusal against the version asked
for and change nothing; the review page's buttons are the rules' answer; people are told by
e-mail once the transaction commits.

The checks themselves are proven in test_workflow.py: here each check of a round records a
verdict through the same workflow function the check task calls, so the states are reached
quickly and only the transitions are under test."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core import mail
from django.db.models import Max

from core.actors import Actor
from core.models import AuditEvent
from core.roles import DATA_SCIENTISTS, RISK_OFFICERS
from governance import operations, rules, workflow
from governance.errors import WorkflowError
from governance.models import CheckRun, CheckStatus, Decision, Deployment
from lifecycle.errors import Forbidden
from lifecycle.models import ModelVersion, RegisteredModel, Status
from tests.conftest import make_version
from tests.factories import UserFactory
from tests.governance.conftest import validated
from tests.ledger import triggers_dropped

pytestmark = pytest.mark.django_db
OK = "Reviewed the card, the checks and the lineage."
REFUSED = "governance.action.refused"


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    """The personas' passwords are hashed with the production hasher otherwise: most of each
    test's time, and none of what is tested here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- helpers ----------------------------------------------------------------------------
@dataclass
class Written:
    """The audit events appended inside an `audited()` block, and their count per action."""

    events: list[AuditEvent] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def one(self, action: str) -> AuditEvent:
        (event,) = [e for e in self.events if e.action == action]
        return event


@contextmanager
def audited() -> Iterator[Written]:
    before = AuditEvent.objects.aggregate(n=Max("seq"))["n"] or 0
    counts_before = Counter(AuditEvent.objects.values_list("action", flat=True))
    written = Written()
    yield written
    written.events = list(AuditEvent.objects.filter(seq__gt=before).order_by("seq"))
    written.counts = Counter(AuditEvent.objects.values_list("action", flat=True)) - counts_before
    assert written.counts == Counter(e.action for e in written.events)  # nothing appended out of order


def assert_by(event: AuditEvent, actor: Actor, version: ModelVersion) -> None:
    assert (event.actor_id, event.actor_username) == (actor.pk, actor.username)
    assert (event.target_type, event.target_id) == ("lifecycle.modelversion", str(version.pk))
    assert event.target_repr == str(version)


def finish_checks(version: ModelVersion, status: str = CheckStatus.PASSED) -> ModelVersion:
    for check in CheckRun.objects.filter(version=version, round=version.review_round).order_by("kind"):
        workflow.record_check_result(check.pk, status=status, metrics={"stub": check.kind})
    version.refresh_from_db()
    return version


def to_review(version: ModelVersion, actor: Actor) -> ModelVersion:
    """Submit (its check tasks are never run: this test's transaction does not commit) and let
    every check of the round pass."""
    version = finish_checks(workflow.submit_version(version.pk, actor=actor))
    assert version.status == Status.IN_REVIEW
    return version


def status_of(version: ModelVersion) -> str:
    return ModelVersion.objects.values_list("status", flat=True).get(pk=version.pk)


def snapshot(model: RegisteredModel) -> dict[str, Any]:
    """Everything a rollback or deployment could change."""
    return {
        "statuses": list(model.versions.order_by("version").values_list("version", "status")),
        "deployments": list(
            Deployment.objects.filter(registered_model=model)
            .order_by("pk")
            .values_list("version__version", "ended_at", "end_reason")
        ),
        "decisions": Decision.objects.filter(version__registered_model=model).count(),
    }


@pytest.fixture
def reviewed(draft_version, data_scientist) -> ModelVersion:
    return to_review(draft_version, data_scientist)


@pytest.fixture
def approved(reviewed, risk_officer) -> ModelVersion:
    return workflow.approve_version(reviewed.pk, actor=risk_officer, justification=OK)


@pytest.fixture
def second(approved, data_scientist, skops_bytes, train_csv, eval_csv) -> ModelVersion:
    """Version 2 of the same model, in review."""
    version = make_version(
        data_scientist, approved.registered_model, skops_bytes, train_csv, eval_csv, parent_version=1
    )
    return to_review(version, data_scientist)


@pytest.fixture
def first_replaced(approved, second, risk_officer) -> tuple[ModelVersion, ModelVersion]:
    """v1 was deployed, then v2 replaced it: v2 in production, v1 approved again."""
    workflow.deploy_version(approved.pk, actor=risk_officer, justification="Initial release.")
    workflow.approve_version(second.pk, actor=risk_officer, justification=OK)
    workflow.deploy_version(second.pk, actor=risk_officer, justification="Better calibrated.")
    assert (status_of(approved), status_of(second)) == (Status.APPROVED, Status.PRODUCTION)
    return approved, second


# --- every allowed transition: one event of its action, by the right actor ---------------
def test_submitting_a_draft_writes_one_submitted_event_by_the_data_scientist(draft_version, data_scientist):
    with audited() as written:
        version = workflow.submit_version(draft_version.pk, actor=data_scientist)
    assert version.status == Status.CHECKING
    assert written.counts == {"lifecycle.version.submitted": 1}
    assert_by(written.one("lifecycle.version.submitted"), data_scientist, version)


def test_the_last_finished_check_writes_one_in_review_event_by_the_system(draft_version, data_scientist):
    version = workflow.submit_version(draft_version.pk, actor=data_scientist)
    first, *rest, last = CheckRun.objects.filter(version=version).order_by("kind")
    with audited() as written:
        for check in (first, *rest):
            workflow.record_check_result(check.pk, status=CheckStatus.PASSED, metrics={})
    assert written.counts == {"governance.check.finished": 4}
    assert status_of(version) == Status.CHECKING
    with audited() as written:
        workflow.record_check_result(last.pk, status=CheckStatus.FAILED, metrics={})
    assert status_of(version) == Status.IN_REVIEW
    assert written.counts == {"governance.check.finished": 1, "governance.version.in_review": 1}
    for event in written.events:
        assert (event.actor_id, event.actor_username) == (None, "system")
        assert event.target_id == str(version.pk)
    assert written.one("governance.version.in_review").data["checks"][last.kind] == "failed"


def test_approving_a_medium_tier_version_writes_approval_recorded_and_approved_by_the_officer(reviewed, risk_officer):
    assert reviewed.registered_model.risk_tier == "medium"
    with audited() as written:
        version = workflow.approve_version(reviewed.pk, actor=risk_officer, justification=OK)
    assert version.status == Status.APPROVED
    assert written.counts == {"governance.version.approval_recorded": 1, "governance.version.approved": 1}
    for event in written.events:
        assert_by(event, risk_officer, version)
    assert [e.action for e in written.events] == ["governance.version.approval_recorded", "governance.version.approved"]


def test_a_high_tier_version_is_approved_by_the_second_officer_with_one_event_per_approval(
    reviewed, risk_officer, second_officer
):
    RegisteredModel.objects.filter(pk=reviewed.registered_model_id).update(risk_tier="high")
    validated(reviewed)  # the policy's default: high-tier approval needs a validation report
    with audited() as written:
        version = workflow.approve_version(reviewed.pk, actor=risk_officer, justification=OK)
    assert version.status == Status.IN_REVIEW
    assert written.counts == {"governance.version.approval_recorded": 1}
    assert_by(written.one("governance.version.approval_recorded"), risk_officer, version)
    with audited() as written:
        version = workflow.approve_version(reviewed.pk, actor=second_officer, justification=OK)
    assert version.status == Status.APPROVED
    assert written.counts == {"governance.version.approval_recorded": 1, "governance.version.approved": 1}
    for event in written.events:
        assert_by(event, second_officer, version)
    assert written.one("governance.version.approved").data["approvers"] == ["rita", "omar"]


@pytest.mark.parametrize(
    ("decide", "action", "to"),
    [
        (workflow.reject_version, "governance.version.rejected", Status.REJECTED),
        (workflow.request_changes, "governance.version.changes_requested", Status.DRAFT),
    ],
    ids=["reject", "request_changes"],
)
def test_closing_a_review_writes_one_event_of_its_decision_by_the_officer(reviewed, risk_officer, decide, action, to):
    with audited() as written:
        version = decide(reviewed.pk, actor=risk_officer, justification="The age cut-off is undocumented.")
    assert version.status == to
    assert written.counts == {action: 1}
    event = written.one(action)
    assert_by(event, risk_officer, version)
    assert event.data["justification"] == "The age cut-off is undocumented."


def test_deploying_writes_one_deployed_event_by_the_officer_also_when_it_replaces_production(
    approved, second, risk_officer
):
    with audited() as written:
        version = workflow.deploy_version(approved.pk, actor=risk_officer, justification="Initial release.")
    assert version.status == Status.PRODUCTION
    assert written.counts == {"governance.version.deployed": 1}
    assert_by(written.one("governance.version.deployed"), risk_officer, version)

    workflow.approve_version(second.pk, actor=risk_officer, justification=OK)
    with audited() as written:
        replacing = workflow.deploy_version(second.pk, actor=risk_officer, justification="Better calibrated.")
    assert (replacing.status, status_of(approved)) == (Status.PRODUCTION, Status.APPROVED)
    assert written.counts == {"governance.version.deployed": 1}
    event = written.one("governance.version.deployed")
    assert_by(event, risk_officer, replacing)
    assert event.data["replaced_version"] == 1


def test_rolling_back_writes_one_rolled_back_event_by_the_officer_on_the_restored_version(first_replaced, risk_officer):
    first, second = first_replaced
    with audited() as written:
        restored = operations.rollback_model(first.registered_model_id, actor=risk_officer, justification="Drift.")
    assert restored == first
    assert (status_of(first), status_of(second)) == (Status.PRODUCTION, Status.APPROVED)
    assert written.counts == {"governance.model.rolled_back": 1}
    event = written.one("governance.model.rolled_back")
    assert_by(event, risk_officer, first)
    assert (event.data["from_version"], event.data["to_version"]) == (2, 1)


@pytest.mark.parametrize("deployed", [False, True], ids=["approved", "production"])
def test_retiring_writes_one_retired_event_by_the_officer(approved, risk_officer, deployed):
    if deployed:
        workflow.deploy_version(approved.pk, actor=risk_officer, justification="Initial release.")
    source = status_of(approved)
    with audited() as written:
        version = operations.retire_version(approved.pk, actor=risk_officer, justification="End of life.")
    assert version.status == Status.RETIRED
    assert written.counts == {"governance.version.retired": 1}
    event = written.one("governance.version.retired")
    assert_by(event, risk_officer, version)
    assert event.data["from"] == source


# --- refused rollbacks -----------------------------------------------------------------
@pytest.mark.parametrize("persona", ["data_scientist", "auditor", "outsider"])
def test_a_rollback_by_someone_who_is_not_a_risk_officer_is_forbidden_and_recorded_against_production(
    request, first_replaced, persona
):
    first, second = first_replaced
    actor = request.getfixturevalue(persona)
    before = snapshot(first.registered_model)
    with audited() as written, pytest.raises(Forbidden, match="risk-officers"):
        operations.rollback_model(first.registered_model_id, actor=actor, justification="Drift.")
    assert written.counts == {REFUSED: 1}
    event = written.one(REFUSED)
    assert_by(event, actor, second)
    assert event.data["attempted"] == "rollback" and event.data["status"] == Status.PRODUCTION
    assert snapshot(first.registered_model) == before


@pytest.mark.parametrize("persona", ["risk_officer", "data_scientist"])
def test_a_rollback_without_a_production_version_is_refused_and_recorded_against_the_version(
    request, approved, persona
):
    actor = request.getfixturevalue(persona)
    before = snapshot(approved.registered_model)
    expected = Forbidden if persona == "data_scientist" else WorkflowError
    with audited() as written, pytest.raises(expected) as raised:
        operations.rollback_model(approved.registered_model_id, actor=actor, justification="Drift.")
    assert (type(raised.value) is Forbidden) == (persona == "data_scientist")
    if persona == "risk_officer":
        assert "no production version" in raised.value.message
    assert written.counts == {REFUSED: 1}
    assert_by(written.one(REFUSED), actor, approved)
    assert snapshot(approved.registered_model) == before


@pytest.mark.parametrize("earlier", ["never_deployed", "earlier_retired"])
def test_a_rollback_with_no_earlier_deployed_version_still_approved_is_refused_against_production(
    approved, second, risk_officer, earlier
):
    if earlier == "earlier_retired":
        workflow.deploy_version(approved.pk, actor=risk_officer, justification="Initial release.")
    workflow.approve_version(second.pk, actor=risk_officer, justification=OK)
    workflow.deploy_version(second.pk, actor=risk_officer, justification="Better calibrated.")
    if earlier == "earlier_retired":
        operations.retire_version(approved.pk, actor=risk_officer, justification="Withdrawn.")
    before = snapshot(second.registered_model)
    with audited() as written, pytest.raises(WorkflowError, match="no earlier deployed version") as raised:
        operations.rollback_model(second.registered_model_id, actor=risk_officer, justification="Drift.")
    assert type(raised.value) is not Forbidden
    assert written.counts == {REFUSED: 1}
    assert_by(written.one(REFUSED), risk_officer, second)
    assert snapshot(second.registered_model) == before
    assert before["statuses"][1] == (2, Status.PRODUCTION)


def test_a_rollback_to_an_earlier_version_whose_approval_no_longer_holds_is_refused(first_replaced, risk_officer):
    """docs/design.md: the previously deployed version becomes production again "only if its approval
    still holds"; an approval is void once the card it bound changed (as deploy_version checks)."""
    first, second = first_replaced
    card = first.card
    card.intended_use = "Now also for automated rejections."  # changed after v1's approval
    with triggers_dropped():  # (by a DBA: the database itself refuses it)
        card.save()
    assert rules.approvals_progress(first) == (0, 1)
    before = snapshot(first.registered_model)
    with audited() as written, pytest.raises(WorkflowError):
        operations.rollback_model(first.registered_model_id, actor=risk_officer, justification="Drift.")
    assert written.counts == {REFUSED: 1}
    assert_by(written.one(REFUSED), risk_officer, second)
    assert snapshot(first.registered_model) == before
    assert "rollback" not in rules.available_actions(second, risk_officer)


# --- refused deployment ----------------------------------------------------------------
@pytest.mark.parametrize("persona", ["data_scientist", "auditor", "outsider"])
def test_a_deploy_asked_by_a_non_officer_while_another_version_serves_is_recorded_against_the_asked_version(
    request, approved, second, risk_officer, persona
):
    workflow.deploy_version(approved.pk, actor=risk_officer, justification="Initial release.")
    asked = workflow.approve_version(second.pk, actor=risk_officer, justification=OK)
    actor = request.getfixturevalue(persona)
    before = snapshot(asked.registered_model)
    with audited() as written, pytest.raises(Forbidden, match="risk-officers"):
        workflow.deploy_version(asked.pk, actor=actor, justification="Ship it.")
    assert written.counts == {REFUSED: 1}
    event = written.one(REFUSED)
    assert_by(event, actor, asked)
    assert event.target_id != str(approved.pk)
    assert event.data["status"] == Status.APPROVED
    assert snapshot(asked.registered_model) == before


# --- the review page's buttons are the rules --------------------------------------------
def _page_buttons(client: Any, user: Any, version: ModelVersion) -> list[str] | None:
    """The workflow buttons the review page shows `user` (ids action-<code>; the model's tier
    form has its own), or None when the page is refused."""
    client.force_login(user)
    response = client.get(f"/admin/governance/versionreview/{version.pk}/change/")
    if response.status_code in (302, 403):
        return None
    assert response.status_code == 200
    return re.findall(r'<button[^>]*\bid="action-([a-z_]+)"', response.content.decode())


def _state(name: str, version: ModelVersion, ctx: dict[str, Any]) -> ModelVersion:
    """Bring `version` (a draft) to the named state through the workflow."""
    ds, ro = ctx["data_scientist"], ctx["risk_officer"]
    if name == "draft":
        return version
    if name == "checking":
        return workflow.submit_version(version.pk, actor=ds)
    version = to_review(version, ds)
    if name == "in_review":
        return version
    if name == "rejected":
        return workflow.reject_version(version.pk, actor=ro, justification=OK)
    version = workflow.approve_version(version.pk, actor=ro, justification=OK)
    if name == "approved":
        return version
    if name == "approved_void":
        card = version.card
        card.intended_use = "Now also for automated rejections."  # changed after the approval
        with triggers_dropped():  # (by a DBA: the database itself refuses it)
            card.save()
        return version
    if name == "retired":
        return operations.retire_version(version.pk, actor=ro, justification=OK)
    if name == "suspended":
        return operations.suspend_version(version.pk, actor=ro, reason="Complaints about the age feature.")
    version = workflow.deploy_version(version.pk, actor=ro, justification=OK)
    if name == "production":
        return version
    assert name == "production_after_replacing"
    second = to_review(make_version(ds, version.registered_model, *ctx["files"], parent_version=1), ds)
    workflow.approve_version(second.pk, actor=ro, justification=OK)
    return workflow.deploy_version(second.pk, actor=ro, justification=OK)


@pytest.fixture
def upload_files(skops_bytes, train_csv, eval_csv) -> tuple[bytes, bytes, bytes]:
    return skops_bytes, train_csv, eval_csv


# What a risk officer who did not submit the version may do in each state.
OFFICER_ACTIONS = {
    "draft": [],
    "checking": [],
    "in_review": ["approve", "reject", "request_changes"],
    "rejected": [],
    "approved": ["deploy", "suspend", "recertify", "retire"],
    "approved_void": ["suspend", "retire"],
    "suspended": ["reinstate", "retire"],
    "retired": [],
    "production": ["suspend", "recertify", "retire"],
    "production_after_replacing": ["rollback", "suspend", "recertify", "retire"],
}


@pytest.mark.parametrize("state", list(OFFICER_ACTIONS))
def test_the_review_page_shows_exactly_the_actions_the_rules_allow_each_person(
    client, state, draft_version, data_scientist, risk_officer, second_officer, auditor, upload_files
):
    ctx = {"data_scientist": data_scientist, "risk_officer": risk_officer, "files": upload_files}
    version = _state(state, draft_version, ctx)
    version.refresh_from_db()
    assert rules.available_actions(version, risk_officer) == OFFICER_ACTIONS[state]
    # rita approved in most states; omar did not: both see what the rules give each of them.
    for officer in (risk_officer, second_officer):
        assert _page_buttons(client, officer, version) == rules.available_actions(version, officer)
    # The data scientist and the auditor may neither act nor open the review page.
    for person in (data_scientist, auditor):
        person.is_staff = True
        person.save()
        assert rules.available_actions(version, person) == []
        assert _page_buttons(client, person, version) is None


def test_the_submitter_who_is_also_an_officer_sees_no_approve_button(
    client, registered_model, skops_bytes, train_csv, eval_csv, risk_officer
):
    both = UserFactory(username="bea", roles=[DATA_SCIENTISTS, RISK_OFFICERS], is_staff=True)
    version = to_review(make_version(both, registered_model, skops_bytes, train_csv, eval_csv), both)
    assert rules.available_actions(version, both) == ["reject", "request_changes"]
    assert _page_buttons(client, both, version) == ["reject", "request_changes"]
    assert _page_buttons(client, risk_officer, version) == ["approve", "reject", "request_changes"]


def test_after_the_first_of_two_approvals_only_the_other_officer_sees_approve(
    client, reviewed, risk_officer, second_officer
):
    RegisteredModel.objects.filter(pk=reviewed.registered_model_id).update(risk_tier="high")
    validated(reviewed)  # the policy's default: high-tier approval needs a validation report
    workflow.approve_version(reviewed.pk, actor=risk_officer, justification=OK)
    assert _page_buttons(client, risk_officer, reviewed) == ["reject", "request_changes"]
    assert _page_buttons(client, second_officer, reviewed) == ["approve", "reject", "request_changes"]
    assert rules.available_actions(reviewed, risk_officer) == ["reject", "request_changes"]
    assert rules.available_actions(reviewed, second_officer) == ["approve", "reject", "request_changes"]


# --- notifications ---------------------------------------------------------------------
def test_when_the_checks_finish_risk_officers_with_an_email_are_told_it_is_ready_for_review(
    draft_version, data_scientist, risk_officer, second_officer, django_capture_on_commit_callbacks, eager_tasks
):
    UserFactory(username="nomail", email="", roles=[RISK_OFFICERS])
    UserFactory(username="gone", email="gone@example.org", roles=[RISK_OFFICERS], is_active=False)
    version = workflow.submit_version(draft_version.pk, actor=data_scientist)
    mail.outbox.clear()
    *firsts, last = CheckRun.objects.filter(version=version).order_by("kind")
    with django_capture_on_commit_callbacks(execute=True):
        for check in firsts:
            workflow.record_check_result(check.pk, status=CheckStatus.PASSED, metrics={})
    assert mail.outbox == []  # not before the last check
    with django_capture_on_commit_callbacks(execute=True):
        workflow.record_check_result(last.pk, status=CheckStatus.PASSED, metrics={})
    (message,) = mail.outbox
    assert message.subject == "credit-risk v1 is ready for review"
    assert sorted(message.to) == ["omar@example.org", "rita@example.org"]


@pytest.mark.parametrize(
    ("decide", "word"),
    [(workflow.approve_version, "approved"), (workflow.reject_version, "rejected")],
    ids=["approved", "rejected"],
)
def test_the_submitter_is_told_of_the_decision_with_its_justification(
    reviewed, risk_officer, django_capture_on_commit_callbacks, eager_tasks, decide, word
):
    mail.outbox.clear()
    justification = f"{word.capitalize()} after reading the fairness results per sex and age group."
    with django_capture_on_commit_callbacks(execute=True):
        decide(reviewed.pk, actor=risk_officer, justification=justification)
    (message,) = mail.outbox
    assert message.to == ["dana@example.org"]
    assert message.subject == f"credit-risk v1: {word}"
    assert f"rita: {justification}" in message.body


def test_a_high_tier_submitter_is_told_once_when_the_second_officer_approves(
    reviewed, risk_officer, second_officer, django_capture_on_commit_callbacks, eager_tasks
):
    RegisteredModel.objects.filter(pk=reviewed.registered_model_id).update(risk_tier="high")
    validated(reviewed)  # the policy's default: high-tier approval needs a validation report
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        workflow.approve_version(reviewed.pk, actor=risk_officer, justification="First look: fine.")
    assert mail.outbox == []
    with django_capture_on_commit_callbacks(execute=True):
        workflow.approve_version(reviewed.pk, actor=second_officer, justification="Second look: fine.")
    (message,) = mail.outbox
    assert message.to == ["dana@example.org"] and message.subject == "credit-risk v1: approved"
    assert "omar: Second look: fine." in message.body


def test_the_approval_mail_carries_the_approval_even_when_its_task_runs_after_the_deployment(
    reviewed, risk_officer, django_capture_on_commit_callbacks, eager_tasks
):
    """The notification is a task enqueued at commit: a busy worker may run it after the officer
    has also deployed the version (approve then deploy from the review page takes seconds)."""
    mail.outbox.clear()
    with django_capture_on_commit_callbacks() as approval_jobs:
        workflow.approve_version(reviewed.pk, actor=risk_officer, justification="Fair enough for retail.")
    workflow.deploy_version(reviewed.pk, actor=risk_officer, justification="Go live after sign-off.")
    for job in approval_jobs:  # the worker reaches the approval's notification only now
        job()
    (message,) = mail.outbox
    assert message.to == ["dana@example.org"]
    assert message.subject == "credit-risk v1: approved"
    assert "rita: Fair enough for retail." in message.body
