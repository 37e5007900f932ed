"""A finding's owner at work and the blocked actions of the review page (docs/oversight.md)."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from compliance.evidence import verify_evidence
from core import audit
from core.errors import DomainError
from core.models import AuditEvent
from governance import action_buttons, finding_work, findings, rules, workflow
from governance.models import FindingComment

pytestmark = pytest.mark.django_db


@pytest.fixture
def production(in_review, risk_officer):
    workflow.approve_version(in_review.pk, actor=risk_officer, justification="Meets the policy.")
    return workflow.deploy_version(in_review.pk, actor=risk_officer, justification="Go live.")


def test_the_owner_comments_and_proposes_closure_but_only_officers_close(
    production, data_scientist, second_scientist, risk_officer
):
    finding, _ = findings.open_finding(version_id=production.pk, key="k", severity="high", title="AUC fell")
    assert finding.owner == data_scientist
    finding_work.owner_comment(finding.pk, actor=data_scientist, text="Looked at it.")
    proposal = finding_work.owner_comment(
        finding.pk, actor=data_scientist, text="Retrained; fixed.", proposes_closure=True
    )
    assert finding_work.closure_proposals(finding) == {proposal.pk}
    assert AuditEvent.objects.filter(action=audit.FINDING_CLOSURE_PROPOSED).count() == 1
    with pytest.raises(DomainError, match="owner and risk officers"):
        finding_work.owner_comment(finding.pk, actor=second_scientist, text="Me too.")
    assert not finding_work.can_close(finding, data_scientist)
    assert finding_work.can_close(finding, risk_officer)
    with pytest.raises(DomainError):
        findings.close_finding(finding.pk, actor=data_scientist, justification="Done.")
    findings.close_finding(finding.pk, actor=risk_officer, justification="Reviewed the retraining.")
    with pytest.raises(DomainError, match="closed"):
        finding_work.owner_comment(finding.pk, actor=data_scientist, text="Late.")
    assert FindingComment.objects.count() == 2
    assert list(finding_work.assigned_to(data_scientist)) == []
    assert verify_evidence().ok, verify_evidence().message


def test_a_blocked_action_carries_the_rules_own_reason(production, risk_officer, data_scientist):
    assert action_buttons.blocked_actions(production, data_scientist) == []  # not an officer: no buttons at all
    before = {b.code for b in action_buttons.blocked_actions(production, risk_officer)}
    assert "recertify" not in before
    findings.open_finding(version_id=production.pk, key="k", severity="high", title="AUC fell")
    blocked = {b.code: b.reason for b in action_buttons.blocked_actions(production, risk_officer)}
    assert blocked["recertify"] == rules.can_recertify(production, risk_officer).reason
    assert "AUC fell" in blocked["recertify"]
    assert "approve" not in blocked  # not an action of a production version


def test_route_decisions_command_reports_what_it_routed(db, capsys):
    call_command("route_decisions")
    assert "0 decision(s) routed" in capsys.readouterr().out
