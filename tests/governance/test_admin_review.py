"""The review pages in the admin: buttons only when the rules allow, crafted POSTs refused."""

from __future__ import annotations

import pytest

from core.models import AuditEvent
from lifecycle.models import ModelVersion, Status

pytestmark = pytest.mark.django_db


def review_url(version):
    return f"/admin/governance/versionreview/{version.pk}/change/"


def decide(client, version, action, justification="Checked everything.", **extra):
    return client.post(
        f"/admin/governance/versionreview/{version.pk}/decide/",
        {"action": action, "justification": justification, **extra},
        follow=True,
    )


def test_the_queue_lists_versions_in_review_oldest_first(client, risk_officer, in_review):
    client.force_login(risk_officer)
    response = client.get("/admin/governance/versionreview/", follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "credit-risk v1" in page and "check-passed" in page


def test_review_page_shows_checks_chart_card_and_allowed_buttons(client, risk_officer, in_review):
    client.force_login(risk_officer)
    page = client.get(review_url(in_review)).content.decode()
    assert "<svg" in page and "demographic_parity_difference" in page
    assert in_review.card.intended_use in page
    assert 'id="action-approve"' in page and 'id="action-deploy"' not in page


def test_approve_then_deploy_from_the_review_page(client, risk_officer, in_review):
    client.force_login(risk_officer)
    response = decide(client, in_review, "approve")
    assert "now approved" in response.content.decode()
    response = decide(client, in_review, "deploy", "Go live after sign-off.")
    assert ModelVersion.objects.get(pk=in_review.pk).status == Status.PRODUCTION
    assert "Go live after sign-off." in response.content.decode()


def test_submitter_sees_no_approve_button_and_a_crafted_post_is_refused_and_audited(client, data_scientist, in_review):
    from core.role_changes import grant_role
    from core.roles import RISK_OFFICERS

    grant_role(data_scientist, RISK_OFFICERS, actor=None, justification="also an officer in this test")
    data_scientist.is_staff = True
    data_scientist.save()
    client.force_login(data_scientist)
    page = client.get(review_url(in_review)).content.decode()
    assert 'id="action-approve"' not in page
    response = decide(client, in_review, "approve")
    assert response.status_code == 200
    assert "Refused" in response.content.decode() and "four-eyes" in response.content.decode()
    assert ModelVersion.objects.get(pk=in_review.pk).status == Status.IN_REVIEW
    assert AuditEvent.objects.filter(action="governance.action.refused", actor=data_scientist).exists()


def test_crafted_deploy_of_a_version_in_review_is_refused_not_a_500(client, risk_officer, in_review):
    client.force_login(risk_officer)
    response = decide(client, in_review, "deploy")
    assert response.status_code == 200 and "Refused" in response.content.decode()
    assert AuditEvent.objects.filter(action="governance.action.refused", actor=risk_officer).count() == 1


def test_an_empty_justification_is_refused(client, risk_officer, in_review):
    client.force_login(risk_officer)
    response = decide(client, in_review, "reject", justification="")
    assert "justification is required" in response.content.decode()
    assert ModelVersion.objects.get(pk=in_review.pk).status == Status.IN_REVIEW


def test_policy_edits_in_the_admin_are_audited(client, risk_officer):
    from governance.policies import active_policy

    policy = active_policy()
    client.force_login(risk_officer)
    data = {k: ("" if v is None else v) for k, v in policy.values().items()}
    data["min_accuracy"] = 0.75
    data["justification"] = "Raised after the model-risk review."
    response = client.post(f"/admin/governance/policy/{policy.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(action="governance.policy.changed")
    assert event.data["changes"]["min_accuracy"] == {"before": 0.7, "after": 0.75}
    assert event.actor == risk_officer and event.data["justification"] == "Raised after the model-risk review."


def test_auditors_and_data_scientists_cannot_use_the_review_admin(client, auditor, data_scientist, in_review):
    for user in (auditor, data_scientist):
        user.is_staff = True
        user.save()
        client.force_login(user)
        assert client.get(review_url(in_review)).status_code in (302, 403)
        decide(client, in_review, "approve")
        assert ModelVersion.objects.get(pk=in_review.pk).status == Status.IN_REVIEW


def test_the_data_scientist_sees_checks_and_decisions_on_the_version_page(
    client, data_scientist, risk_officer, in_review
):
    from governance import workflow

    workflow.reject_version(in_review.pk, actor=risk_officer, justification="Age proxy in the features.")
    client.force_login(data_scientist)
    page = client.get(in_review.get_absolute_url()).content.decode()
    assert "Age proxy in the features." in page and "check-passed" in page
    status = client.get(in_review.get_absolute_url() + "status.json").json()
    assert status["status"] == "rejected" and len(status["checks"]) == 5


def test_review_page_links_the_compliance_report_which_downloads(
    client, risk_officer, in_review, django_capture_on_commit_callbacks
):
    client.force_login(risk_officer)
    page = client.get(review_url(in_review)).content.decode()
    link = f"/audit/models/{in_review.registered_model.name}/versions/{in_review.version}/report.pdf"
    assert f'href="{link}" id="compliance-report"' in page
    # the link leads to the version's audit page, whose button starts the report job
    version_page = client.get(link, follow=True).content.decode()
    assert 'id="generate-report"' in version_page
    report = {"kind": "version_report", "model": in_review.registered_model.name, "version": in_review.version}
    with django_capture_on_commit_callbacks(execute=True):
        job_page = client.post("/audit/jobs/", report)["Location"]
    response = client.get(job_page + "result")
    assert response.status_code == 200 and response.content.startswith(b"%PDF-")


def test_every_review_button_has_its_verb_and_nothing_else_is_one():
    """The review page's buttons come from rules.ACTIONS; the admin's table of what each does
    (governance.admin.REVIEW_VERBS) names each of them, plus the tier form, and nothing more."""
    from governance import rules
    from governance.admin import REVIEW_VERBS

    assert set(REVIEW_VERBS) == {name for name, _ in rules.ACTIONS} | {"set_tier"}
