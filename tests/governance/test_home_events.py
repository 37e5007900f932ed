"""Each role sees only the audit events it may see: data scientists see what happens to
models and versions, not the auditors' work (reports, exports, verifications) nor lockouts or role
changes; auditors and risk officers see the whole trail. One rule (core.selectors) for the home
page and the version page's history."""

from __future__ import annotations

from typing import Any

import pytest

from compliance.services import record_export
from core import audit
from core.selectors import audit_events_visible_to

pytestmark = pytest.mark.django_db


@pytest.fixture
def auditors_work(auditor: Any, draft_version: Any) -> None:
    """The auditor downloads the version's report and an export, and verifies the trail."""
    audit.record(
        audit.REPORT_GENERATED, actor=auditor, target=draft_version, data={"kind": "version", "sha256": "ab" * 32}
    )
    record_export(actor=auditor, what="predictions", filters={}, fmt="csv")
    audit.record(audit.AUDIT_VERIFIED, actor=auditor, data={"ok": True})


def home_actions(client: Any, user: Any) -> str:
    client.force_login(user)
    return client.get("/").content.decode()


def test_data_scientists_do_not_see_the_auditors_activity_on_their_home_page(
    client: Any, data_scientist: Any, auditors_work: None
) -> None:
    page = home_actions(client, data_scientist)
    assert audit.VERSION_CREATED in page  # their own work is there
    for action in (audit.REPORT_GENERATED, audit.EXPORT_DOWNLOADED, audit.AUDIT_VERIFIED):
        assert action not in page
    assert "audrey" not in page.split("Latest audit events")[1]


def test_nor_on_a_version_page(client: Any, data_scientist: Any, draft_version: Any, auditors_work: None) -> None:
    client.force_login(data_scientist)
    page = client.get(draft_version.get_absolute_url()).content.decode()
    assert audit.VERSION_CREATED in page and audit.REPORT_GENERATED not in page


@pytest.mark.parametrize("who", ["auditor", "risk_officer"])
def test_auditors_and_risk_officers_see_the_whole_trail(
    request: pytest.FixtureRequest, client: Any, who: str, auditors_work: None
) -> None:
    page = home_actions(client, request.getfixturevalue(who))
    for action in (audit.REPORT_GENERATED, audit.EXPORT_DOWNLOADED, audit.AUDIT_VERIFIED, audit.VERSION_CREATED):
        assert action in page


def test_the_rule_by_role(
    data_scientist: Any, auditor: Any, risk_officer: Any, outsider: Any, auditors_work: None
) -> None:
    audit.record(audit.LOGIN_LOCKED_OUT, actor=None, data={"username": "omar", "ip_address": "203.0.113.7"})
    shown = set(audit_events_visible_to(data_scientist).values_list("action", flat=True))
    assert audit.VERSION_CREATED in shown
    assert not shown & {audit.REPORT_GENERATED, audit.EXPORT_DOWNLOADED, audit.AUDIT_VERIFIED, audit.LOGIN_LOCKED_OUT}
    assert audit_events_visible_to(auditor).count() == audit_events_visible_to(risk_officer).count()
    assert audit_events_visible_to(auditor).filter(action=audit.LOGIN_LOCKED_OUT).exists()
    assert not audit_events_visible_to(outsider).exists()
