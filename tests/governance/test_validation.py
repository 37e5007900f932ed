"""Independent validation: the validators' role, the report API, the
validator's independence in both orders, the policy's tier requirement, `not_fit` blocking,
conditions becoming findings, the report bound in the manifest, and the benchmark to cite."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group

from core.models import AuditEvent
from core.role_changes import grant_role
from core.roles import DATA_SCIENTISTS, RISK_OFFICERS, VALIDATORS
from governance import manifest, validation, workflow
from governance.errors import WorkflowError
from governance.models import Finding, ValidationReport
from governance.policies import active_policy, update_policy
from lifecycle.errors import Forbidden
from lifecycle.models import RegisteredModel, Status
from tests.conftest import make_version
from tests.factories import UserFactory
from tests.governance.conftest import SECTIONS, submit, validated

pytestmark = pytest.mark.django_db
OK = "Reviewed the card, the checks and the validation report."


@pytest.fixture
def validator(db: None) -> Any:
    return UserFactory(username="vera", roles=[VALIDATORS])


def url(version: Any) -> str:
    return f"/api/v1/models/{version.registered_model.name}/versions/{version.version}/validation"


def body(conclusion: str = "fit_for_use", **extra: Any) -> dict[str, Any]:
    return {"conclusion": conclusion, "sections": dict(SECTIONS), **extra}


def high(version: Any) -> Any:
    RegisteredModel.objects.filter(pk=version.registered_model_id).update(risk_tier="high")
    version.registered_model.refresh_from_db()
    return version


def test_the_validators_role_is_created_by_a_migration() -> None:
    assert Group.objects.filter(name=VALIDATORS).exists()


def test_a_validator_posts_a_report_and_anyone_with_a_role_reads_it(api_client, in_review, validator, auditor):
    api_client.force_authenticate(validator)
    response = api_client.post(url(in_review), body(), format="json")
    assert response.status_code == 201, response.content
    report = ValidationReport.objects.get()
    assert response.json()["id"] == report.pk and report.conclusion == "fit_for_use"
    assert report.validator == validator and report.round == in_review.review_round
    assert report.sections == SECTIONS
    event = AuditEvent.objects.get(action="governance.validation.recorded")
    assert event.actor == validator and event.data["evidence"][0]["row"] == f"governance.validationreport:{report.pk}"
    api_client.force_authenticate(auditor)
    listed = api_client.get(url(in_review)).json()
    assert [r["id"] for r in listed["reports"]] == [report.pk] and listed["in_force"] == report.pk
    assert listed["reports"][0]["validator"] == "vera" and listed["reports"][0]["sections"] == SECTIONS


@pytest.mark.parametrize("persona", ["risk_officer", "data_scientist", "auditor", "second_scientist"])
def test_only_validators_write_reports(request, api_client, in_review, persona):
    api_client.force_authenticate(request.getfixturevalue(persona))
    response = api_client.post(url(in_review), body(), format="json")
    assert response.status_code == 403, response.content
    assert "validators" in response.json()["error"]["message"]
    assert not ValidationReport.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"conclusion": "great", "sections": SECTIONS}, "conclusion"),
        (
            {"conclusion": "fit_for_use", "sections": {k: v for k, v in SECTIONS.items() if k != "data"}},
            "sections.data",
        ),
        ({"conclusion": "fit_for_use", "sections": {**SECTIONS, "limitations": "  "}}, "sections.limitations"),
        ({"conclusion": "fit_with_conditions", "sections": SECTIONS}, "conditions"),
        ({"conclusion": "fit_for_use", "sections": SECTIONS, "conditions": ["Recalibrate"]}, "conditions"),
        ({"conclusion": "fit_for_use", "sections": "all good"}, "sections"),
    ],
)
def test_bad_reports_are_400_naming_the_field(api_client, in_review, validator, payload, field):
    api_client.force_authenticate(validator)
    response = api_client.post(url(in_review), payload, format="json")
    assert response.status_code == 400, response.content
    assert field in str(response.json()["error"]["details"])
    assert not ValidationReport.objects.exists()


def test_the_creator_or_submitter_never_validates_their_version(
    api_client,
    registered_model,
    skops_bytes,
    train_csv,
    eval_csv,
    django_capture_on_commit_callbacks,
    eager_tasks,
    lenient_policy,
):
    creator = UserFactory(username="cara", roles=[DATA_SCIENTISTS, VALIDATORS])
    submitter = UserFactory(username="sue", roles=[DATA_SCIENTISTS, VALIDATORS])
    version = make_version(creator, registered_model, skops_bytes, train_csv, eval_csv)
    version = submit(version, submitter, django_capture_on_commit_callbacks)
    for person, word in ((creator, "created"), (submitter, "submitted")):
        api_client.force_authenticate(person)
        response = api_client.post(url(version), body(), format="json")
        assert response.status_code == 403 and f"You {word} this version" in response.json()["error"]["message"]
    assert not ValidationReport.objects.exists()


def test_an_approver_never_validates_and_a_validator_never_approves(in_review, risk_officer, second_officer):
    high(in_review)
    both = UserFactory(username="vic", roles=[RISK_OFFICERS, VALIDATORS])
    # a validator who is also a risk officer may not approve what they validated
    validation.record_validation(in_review.pk, actor=both, conclusion="fit_for_use", sections=SECTIONS)
    with pytest.raises(Forbidden, match="You validated this version"):
        workflow.approve_version(in_review.pk, actor=both, justification=OK)
    # an officer who approved may not validate afterwards
    assert workflow.approve_version(in_review.pk, actor=risk_officer, justification=OK).status == Status.IN_REVIEW
    grant_role(risk_officer, VALIDATORS, actor=None, justification="Joins the second line.")
    with pytest.raises(Forbidden, match="You approved this version"):
        validation.record_validation(in_review.pk, actor=risk_officer, conclusion="fit_for_use", sections=SECTIONS)
    assert ValidationReport.objects.count() == 1
    assert workflow.approve_version(in_review.pk, actor=second_officer, justification=OK).status == Status.APPROVED


def test_a_high_tier_version_needs_a_report_before_approval(in_review, risk_officer, second_officer):
    high(in_review)
    with pytest.raises(WorkflowError, match="requires an independent validation report"):
        workflow.approve_version(in_review.pk, actor=risk_officer, justification=OK)
    refused = AuditEvent.objects.filter(action="governance.action.refused", target_id=str(in_review.pk)).get()
    assert "validation report" in refused.data["reason"]
    validated(in_review)
    workflow.approve_version(in_review.pk, actor=risk_officer, justification=OK)
    assert workflow.approve_version(in_review.pk, actor=second_officer, justification=OK).status == Status.APPROVED


def test_the_policy_names_the_tiers_that_need_a_report(in_review, risk_officer):
    assert [active_policy().validation_required_for(t) for t in ("low", "medium", "high")] == [False, False, True]
    update_policy(
        active_policy().pk,
        actor=None,
        changes={"validation_required_medium": True},
        justification="Medium-tier credit models are validated too.",
    )
    with pytest.raises(WorkflowError, match="requires an independent validation report before a medium-tier"):
        workflow.approve_version(in_review.pk, actor=risk_officer, justification=OK)
    validated(in_review)
    assert workflow.approve_version(in_review.pk, actor=risk_officer, justification=OK).status == Status.APPROVED


def test_not_fit_blocks_approval_at_any_tier(in_review, risk_officer, client):
    validated(in_review, "not_fit")
    with pytest.raises(WorkflowError, match="not fit for use"):
        workflow.approve_version(in_review.pk, actor=risk_officer, justification=OK)
    assert in_review.__class__.objects.get(pk=in_review.pk).status == Status.IN_REVIEW
    from governance import rules

    assert "approve" not in rules.available_actions(in_review, risk_officer)


def test_conditions_become_findings_owned_by_the_model_owner(api_client, in_review, validator, data_scientist):
    api_client.force_authenticate(validator)
    conditions = ["Recalibrate on local data within 90 days.", "Human review of every adverse decision."]
    response = api_client.post(url(in_review), body("fit_with_conditions", conditions=conditions), format="json")
    assert response.status_code == 201, response.content
    report = ValidationReport.objects.get()
    findings = list(Finding.objects.filter(version=in_review).order_by("pk"))
    assert [f.description for f in findings] == conditions
    assert [f.key for f in findings] == [f"validation:{report.pk}:1", f"validation:{report.pk}:2"]
    assert all(f.owner == data_scientist and f.severity == "medium" and f.is_open for f in findings)
    assert [f["id"] for f in response.json()["findings"]] == [f.pk for f in findings]
    assert AuditEvent.objects.filter(action="governance.finding.opened", actor=validator).count() == 2


def test_the_report_in_force_is_bound_in_the_manifest_the_approval_binds(in_review, risk_officer):
    assert "validation" not in manifest.build(in_review)  # unchanged for versions without a report
    before = manifest.sha256(in_review)
    report = validated(in_review)
    built = manifest.build(in_review)
    assert built["validation"]["id"] == report.pk and len(built["validation"]["sha256"]) == 64
    assert validation.report_sha256(report) == built["validation"]["sha256"]
    assert manifest.sha256(in_review) != before
    version = workflow.approve_version(in_review.pk, actor=risk_officer, justification=OK)
    assert version.status == Status.APPROVED and version.manifest_sha256 == manifest.sha256(version)


def test_reports_are_written_before_approval_only(in_review, risk_officer, validator):
    workflow.approve_version(in_review.pk, actor=risk_officer, justification=OK)
    with pytest.raises(WorkflowError, match="before approval"):
        validation.record_validation(in_review.pk, actor=validator, conclusion="fit_for_use", sections=SECTIONS)


def test_the_benchmark_refits_another_family_and_the_sensitivity_is_given(api_client, in_review, validator):
    api_client.force_authenticate(validator)
    response = api_client.get(url(in_review) + "/benchmark")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["artifact"]["estimator"].endswith("LogisticRegression")
    assert data["benchmark"]["family"].startswith("decision tree") and data["benchmark"]["error"] == ""
    assert 0.5 < data["benchmark"]["metrics"]["accuracy"] <= 1.0
    assert set(data["benchmark"]["difference"]) == {"accuracy", "balanced_accuracy", "f1"}
    assert {row["feature"] for row in data["sensitivity"]} == {"job", "credit_amount", "duration", "age"}
    assert any(row["decisions_changed"] > 0 for row in data["sensitivity"])


def test_the_benchmark_is_not_for_data_scientists(api_client, in_review, data_scientist):
    api_client.force_authenticate(data_scientist)
    assert api_client.get(url(in_review) + "/benchmark").status_code == 403


def test_the_validation_page_takes_a_validators_report_and_shows_the_benchmark(client, in_review, validator):
    page_url = f"/registry/models/credit-risk/versions/{in_review.version}/validation/"
    client.force_login(validator)
    page = client.get(page_url).content.decode()
    assert 'id="record-validation"' in page and "No validation report yet." in page
    bad = client.post(page_url, {"conclusion": "fit_with_conditions", **SECTIONS, "conditions": ""})
    assert "needs at least one condition" in bad.content.decode() and not ValidationReport.objects.exists()
    response = client.post(
        page_url, {"conclusion": "fit_with_conditions", **SECTIONS, "conditions": "Recalibrate.\nReview monthly."}
    )
    assert response.status_code == 302
    report = ValidationReport.objects.get()
    assert report.validator == validator and report.conditions == ["Recalibrate.", "Review monthly."]
    page = client.get(page_url).content.decode()
    assert "Fit with conditions" in page and "in force" in page
    benchmark = client.get(page_url + "?benchmark=1").content.decode()
    assert "decision tree (max depth 5)" in benchmark and "credit_amount" in benchmark


def test_the_page_tells_the_creator_why_they_cannot_validate(client, in_review, data_scientist):
    client.force_login(data_scientist)
    page = client.get(f"/registry/models/credit-risk/versions/{in_review.version}/validation/").content.decode()
    assert 'id="record-validation"' not in page and "Only members of validators" in page
    response = client.post(
        f"/registry/models/credit-risk/versions/{in_review.version}/validation/",
        {"conclusion": "fit_for_use", **SECTIONS},
    )
    assert response.status_code == 403 and not ValidationReport.objects.exists()
