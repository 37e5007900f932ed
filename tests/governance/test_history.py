"""What was live at a moment: the production version then, its manifest, approvers and the
evidence they saw, from the deployment and decision rows."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pytest
from django.utils import timezone

from core.evidence import evidence
from governance import workflow
from governance.models import CheckRun, Decision
from governance.policies import active_policy, update_policy
from tests.conftest import make_version
from tests.serving.conftest import checked

pytestmark = pytest.mark.django_db


def history(client: Any, user: Any, at: str, model: str = "credit-risk") -> Any:
    client.force_authenticate(user)
    return client.get(f"/api/v1/models/{model}/history", {"at": at})


@pytest.fixture
def lifetime(draft_version, data_scientist, risk_officer, second_officer, skops_bytes, train_csv, eval_csv):
    """v1 approved, then deployed; v2 approved by another officer and deployed in its place: the
    moments before any deployment, during v1 and after v2 replaced it."""
    update_policy(
        active_policy().pk,
        actor=None,
        justification="Set for this test.",
        changes={"max_fairness_difference": 1.0, "min_fairness_ratio": 0.0},
    )
    v1 = checked(draft_version, data_scientist)
    workflow.approve_version(v1.pk, actor=risk_officer, justification="Sound.")
    before = timezone.now()
    workflow.deploy_version(v1.pk, actor=risk_officer, justification="Go live.")
    during = timezone.now()
    v2 = checked(make_version(data_scientist, v1.registered_model, skops_bytes, train_csv, eval_csv), data_scientist)
    workflow.approve_version(v2.pk, actor=second_officer, justification="Better calibrated.")
    workflow.deploy_version(v2.pk, actor=second_officer, justification="Replace v1.")
    after = timezone.now()
    return v1, v2, before, during, after


def test_the_version_live_at_three_moments_with_its_approvers_and_evidence(
    api_client, lifetime, auditor, risk_officer, second_officer
):
    v1, v2, before, during, after = lifetime
    nothing = history(api_client, auditor, before.isoformat())
    assert nothing.status_code == 200, nothing.json()
    assert nothing.json()["version"] is None and "no version in production" in nothing.json()["message"]

    first = history(api_client, auditor, during.isoformat()).json()
    assert first["version"] == 1
    v1.refresh_from_db()
    approval = Decision.objects.get(version=v1, kind="approve")
    assert first["manifest_sha256"] == approval.manifest_sha256 == v1.manifest_sha256 != ""
    assert [a["by"] for a in first["approvers"]] == [risk_officer.username]
    assert first["approvers"][0]["bound"]["checks_sha256"] == approval.checks_sha256
    assert first["approvers"][0]["sha256"] == evidence(approval)[0]["sha256"]
    checks = CheckRun.objects.filter(version=v1, round=v1.review_round)
    assert {(c["id"], c["status"]) for c in first["evidence"]["checks"]} == {(c.pk, c.status) for c in checks}
    assert len(first["evidence"]["checks"]) == checks.count() > 0

    second = history(api_client, risk_officer, after.isoformat()).json()
    assert second["version"] == 2 and [a["by"] for a in second["approvers"]] == [second_officer.username]
    v2.refresh_from_db()
    assert second["manifest_sha256"] == v2.manifest_sha256
    assert second["deployment"]["deployed_by"] == second_officer.username


def test_a_moment_without_a_zone_is_utc_and_a_bad_moment_is_a_named_400(api_client, lifetime, auditor):
    _, _, _, during, _ = lifetime
    naive = during.astimezone(UTC).replace(tzinfo=None).isoformat()
    assert history(api_client, auditor, naive).json()["version"] == 1
    for bad in ("yesterday", "2026-13-45T00:00:00", "2026-03-03T25:00:00Z"):
        response = history(api_client, auditor, bad)
        assert response.status_code == 400, bad
        assert "at" in response.json()["error"]["details"]


def test_only_auditors_and_risk_officers_read_history(api_client, lifetime, data_scientist, outsider, auditor):
    for user in (data_scientist, outsider):
        assert history(api_client, user, "").status_code == 403
    assert history(api_client, auditor, "", model="no-such-model").status_code == 404
    assert history(api_client, auditor, "").json()["version"] == 2  # no moment: now
