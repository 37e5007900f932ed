"""The audit trail moved from governance to core (governance 0009, core 0001) in Django's state
only: rows written while governance owned the model are read through core.models.AuditEvent
with the same ids and hashes, the content type moves along, and going back keeps the rows too.

Runs on PostgreSQL here (its append-only triggers stay on throughout); nothing in it is
PostgreSQL-specific, so it passes on SQLite as well."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.apps.registry import Apps
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from core import audit
from core.models import AuditChainHead, AuditEvent
from tests.factories import UserFactory
from tests.services.conftest import grant_runtime_role

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE_THE_MOVE = [("governance", "0008_onnx_check"), ("core", None)]
MOVED = ("auditevent", "auditchainhead")


def migrate(targets: list[tuple[str, str | None]]) -> Apps:
    """Migrate the test database to `targets`; the historical apps at that point."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    ContentType.objects.clear_cache()
    return MigrationExecutor(connection).loader.project_state([t for t in targets if t[1] is not None]).apps


def latest() -> list[tuple[str, str | None]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def unapplied() -> list[str]:
    executor = MigrationExecutor(connection)
    return [str(m) for m, _ in executor.migration_plan(executor.loader.graph.leaf_nodes())]


@pytest.fixture
def at_latest_afterwards() -> Iterator[None]:
    """Whatever happens in the test, the database ends migrated to the latest state, and the
    runtime role granted again on the tables migrating created anew (as `make serve` does)."""
    assert unapplied() == []
    yield
    migrate(latest())
    assert unapplied() == []
    grant_runtime_role()


def content_types() -> dict[str, tuple[int, str]]:
    return {
        model: (pk, app_label)
        for pk, app_label, model in ContentType.objects.filter(model__in=MOVED).values_list("id", "app_label", "model")
    }


def chain(model: Any = AuditEvent) -> list[tuple[int, int, str, str]]:
    return list(model.objects.order_by("seq").values_list("id", "seq", "prev_hash", "hash"))


def write_events(apps: Apps, actor: Any, n: int) -> list[tuple[int, int, str, str]]:
    """Append `n` chained events with the historical governance models, as the code of that time
    did: continue the chain from its head and move the head along."""
    Event = apps.get_model("governance", "AuditEvent")
    Head = apps.get_model("governance", "AuditChainHead")
    head, _ = Head.objects.get_or_create(pk=1)
    start = timezone.now()
    for i in range(n):
        event = Event(
            seq=head.seq + 1,
            created_at=start + timedelta(seconds=i),
            actor_id=actor.pk if i % 2 == 0 else None,
            actor_username=actor.username if i % 2 == 0 else "system",
            action="governance.version.approved" if i % 2 == 0 else "governance.check.finished",
            target_type="lifecycle.modelversion",
            target_id=str(100 + i),
            target_repr=f"credit-risk v{i + 1}",
            data={"round": 1, "note": f"written under governance, #{i}"},
            prev_hash=head.hash,
        )
        event.hash = audit.compute_hash(event.prev_hash, audit.event_payload(event))
        event.save(force_insert=True)
        head.seq, head.hash = event.seq, event.hash
        head.save()
    return chain(Event)


def test_audit_rows_written_before_the_move_to_core_are_read_by_core_and_survive_going_back(
    at_latest_afterwards,
):
    actor = UserFactory(username="rita")
    moved = {m: ContentType.objects.get_by_natural_key("core", m).pk for m in MOVED}
    permissions = sorted(Permission.objects.filter(content_type_id__in=moved.values()).values_list("id", "codename"))
    assert permissions  # (view, add, change, delete) of both models, created with the database

    old_apps = migrate(BEFORE_THE_MOVE)
    assert old_apps.get_model("governance", "AuditEvent")._meta.db_table == "governance_auditevent"
    with pytest.raises(LookupError):
        old_apps.get_model("core", "AuditEvent")
    assert content_types() == {m: (pk, "governance") for m, pk in moved.items()}
    existing = chain(old_apps.get_model("governance", "AuditEvent"))
    written = write_events(old_apps, actor, 3)
    new = written[len(existing) :]
    assert written[: len(existing)] == existing
    assert [seq for _, seq, _, _ in new] == [len(existing) + 1, len(existing) + 2, len(existing) + 3]

    migrate(latest())
    rows = chain()
    assert rows[: len(written)] == written  # later migrations may append (chained) events of their own
    first = AuditEvent.objects.get(pk=new[0][0])
    assert (first.actor, first.action) == (actor, "governance.version.approved")
    assert first.data == {"round": 1, "note": "written under governance, #0"}
    assert AuditChainHead.objects.get(pk=1).hash == rows[-1][3]
    assert audit.verify_chain().ok
    # The content types (and the permissions that point at them) are the same rows, now core's.
    assert content_types() == {m: (pk, "core") for m, pk in moved.items()}
    assert ContentType.objects.get_for_model(AuditEvent).pk == moved["auditevent"]
    assert sorted(Permission.objects.filter(content_type_id__in=moved.values()).values_list("id", "codename")) == (
        permissions
    )
    # The chain goes on from where it stood.
    appended = audit.record("governance.audit.verified", actor=actor, data={"ok": True})
    assert (appended.seq, appended.prev_hash) == (rows[-1][1] + 1, rows[-1][3])
    after = chain()

    old_apps = migrate(BEFORE_THE_MOVE)
    assert chain(old_apps.get_model("governance", "AuditEvent")) == after
    assert content_types() == {m: (pk, "governance") for m, pk in moved.items()}

    migrate(latest())
    assert chain()[: len(after)] == after
    assert content_types() == {m: (pk, "core") for m, pk in moved.items()}
    assert audit.verify_chain().ok
