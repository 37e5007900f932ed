"""The database itself keeps a version's status on the lifecycle table (governance.triggers):
whoever sends the SQL, a move governance.rules.TRANSITIONS does not allow is refused, and a
version is only ever registered as a draft. Same triggers on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from governance.rules import TRANSITIONS
from lifecycle.models import ModelVersion, Status
from tests.ledger import triggers_dropped

REFUSED = "ledger: a version's status moves only along the lifecycle table"


def _put(version: ModelVersion, status: str) -> None:
    with triggers_dropped():  # (the starting state, set as a DBA would)
        ModelVersion.objects.filter(pk=version.pk).update(status=status)


def test_every_status_move_outside_the_lifecycle_table_is_refused_by_the_database(draft_version) -> None:
    refused, allowed = [], []
    for source in Status.values:
        for to in Status.values:
            if to == source:
                continue
            _put(draft_version, source)
            try:
                with transaction.atomic():
                    ModelVersion.objects.filter(pk=draft_version.pk).update(status=to)
                allowed.append((source, to))
            except IntegrityError as exc:
                assert REFUSED in str(exc)
                refused.append((source, to))
    assert set(allowed) == {(str(s), str(t)) for s, t in TRANSITIONS}
    assert len(refused) == len(Status.values) * (len(Status.values) - 1) - len(TRANSITIONS)
    assert ("production", "draft") in refused and ("rejected", "approved") in refused


def test_a_served_version_cannot_be_put_back_in_review_or_approved_again_from_retired(production) -> None:
    for to in (Status.IN_REVIEW, Status.DRAFT, Status.CHECKING, Status.REJECTED):
        with pytest.raises(IntegrityError, match=REFUSED), transaction.atomic():
            ModelVersion.objects.filter(pk=production.pk).update(status=to)
    ModelVersion.objects.filter(pk=production.pk).update(status=Status.RETIRED)  # allowed: production -> retired
    with pytest.raises(IntegrityError, match=REFUSED), transaction.atomic():
        ModelVersion.objects.filter(pk=production.pk).update(status=Status.APPROVED)
    assert ModelVersion.objects.get(pk=production.pk).status == Status.RETIRED


def test_a_version_is_never_registered_in_any_status_but_draft(draft_version) -> None:
    row = ModelVersion.objects.get(pk=draft_version.pk)
    row.pk, row.version, row.status = None, row.version + 1, Status.PRODUCTION
    with pytest.raises(IntegrityError, match="ledger: a version is registered as a draft"), transaction.atomic():
        row.save(force_insert=True)
    assert not ModelVersion.objects.filter(status=Status.PRODUCTION).exists()
