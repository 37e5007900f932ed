"""Roles change only through grant_role / revoke_role: in the admin and from the command line,
each change is an audit event with who did it and why."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from core.models import AuditEvent
from core.roles import AUDITORS, RISK_OFFICERS, roles_of
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_the_admin_grants_a_role_only_with_a_justification_and_records_it(admin_client, admin_user):
    person = UserFactory(username="newcomer")
    url = f"/admin/auth/user/{person.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert 'name="roles"' in page and 'name="groups"' not in page
    form = {"username": "newcomer", "date_joined_0": "2026-11-29", "date_joined_1": "10:00:00", "roles": [AUDITORS]}
    refused = admin_client.post(url, form)
    assert refused.status_code == 200 and "Say why the roles change." in refused.content.decode()
    assert AUDITORS not in roles_of(UserFactory._meta.model.objects.get(pk=person.pk))
    done = admin_client.post(url, {**form, "role_justification": "Joins internal audit."})
    assert done.status_code == 302
    person = UserFactory._meta.model.objects.get(pk=person.pk)
    assert roles_of(person) == {AUDITORS}
    event = AuditEvent.objects.filter(action="core.role.granted", target_id=str(person.pk)).get()
    assert event.actor_username == admin_user.username and event.data["justification"] == "Joins internal audit."
    assert event.data["role"] == AUDITORS


def test_the_command_grants_and_revokes_with_a_justification(capsys):
    person = UserFactory(username="officer-to-be")
    call_command("grant_role", "officer-to-be", RISK_OFFICERS, justification="Appointed by the CRO.")
    assert roles_of(UserFactory._meta.model.objects.get(pk=person.pk)) == {RISK_OFFICERS}
    call_command("grant_role", "officer-to-be", RISK_OFFICERS, "--revoke", justification="Left the bank.")
    assert roles_of(UserFactory._meta.model.objects.get(pk=person.pk)) == set()
    actions = list(
        AuditEvent.objects.filter(target_id=str(person.pk), action__startswith="core.role.").values_list(
            "action", flat=True
        )
    )
    assert actions == ["core.role.granted", "core.role.revoked"]
    with pytest.raises(CommandError, match="no user"):
        call_command("grant_role", "nobody", RISK_OFFICERS, justification="x")
    call_command("verify_audit")  # every membership (and its removal) is proven
