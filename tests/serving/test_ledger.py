"""The ledger proven both ways (docs/ledger.md): every edit and deletion a careful reviewer tried
behind the services is named by verify_audit, and with the triggers in place the database
refuses the edits to what a served version answers."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from governance.models import Decision, DecisionKind, Deployment
from lifecycle.models import Dataset, ModelCard, ModelVersion, Status
from serving.models import DecisionReview
from tests.serving.conftest import rows


def failure(capsys: Any | None = None) -> str:
    with pytest.raises(CommandError) as failed:
        call_command("verify_audit")
    return str(failed.value)


def version_row(version: ModelVersion) -> str:
    return f"lifecycle.modelversion:{version.pk} differs from what audit event"


def test_the_untouched_ledger_verifies(production: ModelVersion) -> None:
    call_command("verify_audit")


EDITS: dict[str, Any] = {
    "classes reversed": lambda v: {"classes": list(reversed(v.classes))},
    "expiry removed": lambda v: {"approval_expires_at": None},
    "expiry fifty years on": lambda v: {"approval_expires_at": timezone.now() + timedelta(days=365 * 50)},
    "input schema": lambda v: {"input_schema": v.input_schema[:-1]},
    "reason texts": lambda v: {"reason_texts": {"age": "Because."}},
    "favourable class": lambda v: {"favourable_class": v.classes[0]},
    "code commit": lambda v: {"code_commit": "f" * 40},
    "parameters": lambda v: {"params": {**v.params, "forged": 1}},
    "personal declaration": lambda v: {"personal_features": ["age"], "subject_field": "business_key"},
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edit_of_a_served_version_is_named_by_verification(
    edit: str, production: ModelVersion, as_dba: None
) -> None:
    ModelVersion.objects.filter(pk=production.pk).update(**EDITS[edit](production))
    assert version_row(production) in failure()
    assert ModelVersion.objects.get(pk=production.pk).status == Status.SUSPENDED


def test_changed_authors_are_named(production: ModelVersion, as_dba: None, risk_officer: Any) -> None:
    ModelVersion.objects.filter(pk=production.pk).update(created_by=risk_officer, submitted_by=risk_officer)
    assert version_row(production) in failure()


def test_a_forged_dataset_hash_is_named(production: ModelVersion, as_dba: None) -> None:
    Dataset.objects.filter(pk=production.training_dataset_id).update(sha256="0" * 64)
    message = failure()
    assert f"lifecycle.dataset:{production.training_dataset_id} differs from what audit event" in message


def test_a_swapped_training_dataset_is_named(production: ModelVersion, as_dba: None) -> None:
    ModelVersion.objects.filter(pk=production.pk).update(training_dataset_id=production.evaluation_dataset_id)
    assert version_row(production) in failure()


def test_a_retired_versions_card_edit_is_named(production: ModelVersion, risk_officer: Any, as_dba: None) -> None:
    from governance import operations

    operations.retire_version(production.pk, actor=risk_officer, justification="End of life.")
    card = ModelCard.objects.get(version=production)
    ModelCard.objects.filter(pk=card.pk).update(intended_use="Anything.")
    assert f"lifecycle.modelcard:{card.pk} differs from what audit event" in failure()


def _delete(model: Any, pk: int) -> None:
    # as a DBA: straight SQL, around the ORM's cascade rules
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA defer_foreign_keys = ON")
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [pk])  # noqa: S608


def test_a_deleted_deploy_decision_is_named_with_the_event_that_recorded_it(production: ModelVersion) -> None:
    decision = Decision.objects.get(version=production, kind=DecisionKind.DEPLOY)
    with transaction.atomic():
        _delete(Decision, decision.pk)
        message = failure()
        transaction.set_rollback(True)
    assert f"governance.decision:{decision.pk} was deleted (audit event #" in message


def test_a_deleted_deployment_is_named(production: ModelVersion) -> None:
    deployment = Deployment.objects.get(version=production)
    with transaction.atomic():
        _delete(Deployment, deployment.pk)
        message = failure()
        transaction.set_rollback(True)
    assert f"governance.deployment:{deployment.pk} was deleted (audit event #" in message


def test_a_deleted_human_override_is_named(
    keyed: Any, production: ModelVersion, german: Any, risk_officer: Any
) -> None:
    pid = keyed.post(
        f"/api/v1/models/{production.registered_model.name}/predict", {"instances": rows(german, 1)}, format="json"
    ).json()["prediction_ids"][0]
    keyed.force_authenticate(risk_officer)
    reviewed = keyed.post(
        f"/api/v1/predictions/{pid}/review",
        json.dumps({"action": "overridden", "final_decision": production.classes[0], "justification": "Checked."}),
        content_type="application/json",
    )
    assert reviewed.status_code in (200, 201), reviewed.content
    review = DecisionReview.objects.get()
    _delete(DecisionReview, review.pk)
    assert f"serving.decisionreview:{review.pk} was deleted (audit event #" in failure()


def test_with_triggers_the_database_refuses_reversing_a_served_versions_classes(production: ModelVersion) -> None:
    refused = pytest.raises(IntegrityError, match="ledger: a submitted version's governed columns never change")
    with refused, transaction.atomic():
        ModelVersion.objects.filter(pk=production.pk).update(classes=list(reversed(production.classes)))


def test_with_triggers_the_database_refuses_editing_a_served_versions_card(production: ModelVersion) -> None:
    refused = pytest.raises(IntegrityError, match="ledger: the model card of a submitted version never changes")
    with refused, transaction.atomic():
        ModelCard.objects.filter(version=production).update(intended_use="Anything.")


def test_without_triggers_an_edit_of_the_manifest_is_refused_at_the_next_load(
    keyed: Any, production: ModelVersion, german: Any, as_dba: None
) -> None:
    from serving import engine

    url = f"/api/v1/models/{production.registered_model.name}/predict"
    assert keyed.post(url, {"instances": rows(german, 1)}, format="json").status_code == 200
    ModelVersion.objects.filter(pk=production.pk).update(classes=list(reversed(production.classes)))
    engine.clear_cache()  # a process that had not loaded it yet (a new worker)
    refused = keyed.post(url, {"instances": rows(german, 1)}, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "version_not_servable"
    assert ModelVersion.objects.get(pk=production.pk).status == Status.SUSPENDED


def test_a_changed_manifest_column_stops_the_very_next_answer_of_a_loaded_process(
    keyed: Any, production: ModelVersion, german: Any, as_dba: None
) -> None:
    url = f"/api/v1/models/{production.registered_model.name}/predict"
    assert keyed.post(url, {"instances": rows(german, 1)}, format="json").status_code == 200
    ModelVersion.objects.filter(pk=production.pk).update(manifest_sha256="0" * 64)
    refused = keyed.post(url, {"instances": rows(german, 1)}, format="json")
    assert refused.status_code == 403, refused.content
