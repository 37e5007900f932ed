"""Destroying a dataset's key: the end of a dataset's life at rest. Its file
stays encrypted under a key nobody has any more; its name, SHA-256 and lineage stay, so every
approval, report and audit event that names it still verifies."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from core import audit
from core.actors import Actor
from core.errors import DomainError, Forbidden
from core.evidence import evidence
from governance import dataset_rules, rules
from governance.errors import DatasetInUse, DatasetRetentionRunning, WorkflowError
from governance.policies import active_policy
from lifecycle.errors import NotFound
from lifecycle.models import Dataset, DatasetKey

_ERRORS: dict[str, type[WorkflowError]] = {
    "dataset_in_use": DatasetInUse,
    "dataset_retention_running": DatasetRetentionRunning,
}


class _Refused(Exception):
    def __init__(self, error: DomainError) -> None:
        super().__init__(error.message)
        self.error = error


def _refusal(rule: rules.Rule) -> DomainError:
    if rule.forbidden:
        return Forbidden(rule.reason)
    return _ERRORS.get(rule.code, WorkflowError)(rule.reason)


@transaction.atomic
def _destroy(dataset_id: int, *, actor: Actor, justification: str) -> DatasetKey:
    # The dataset row is locked, as lifecycle.services locks it before a new version names it:
    # a version created meanwhile is either seen by the rule here or refused there.
    dataset = Dataset.objects.select_for_update().filter(pk=dataset_id).first()
    if dataset is None:
        raise NotFound(f"There is no dataset {dataset_id}.")
    rule = dataset_rules.can_destroy_dataset_key(dataset, actor)
    if not rule:
        raise _Refused(_refusal(rule))
    text = (justification or "").strip()
    if not text:
        raise WorkflowError("A written justification is required.", field="justification")
    versions = [
        {"model": v.registered_model.name, "version": v.version, "status": v.status}
        for v in dataset_rules.versions_using(dataset).order_by("registered_model__name", "version")
    ]
    destroyed = DatasetKey.objects.filter(dataset=dataset, destroyed_at__isnull=True).update(
        wrapped=None, destroyed_at=timezone.now(), destroyed_by=actor, justification=text
    )
    if destroyed != 1:
        raise WorkflowError(f"The key of dataset {dataset} changed while this request was deciding; reload.")
    key = DatasetKey.objects.get(dataset=dataset)
    audit.record(
        audit.DATASET_KEY_DESTROYED,
        actor=actor,
        target=dataset,
        data={
            "dataset": dataset.pk,
            "sha256": dataset.sha256,
            "justification": text,
            "versions": versions,
            "retention_days": active_policy().personal_data_retention_days,
            "evidence": evidence(key),
        },
    )
    return key


def destroy_dataset_key(dataset_id: int, *, actor: Actor, justification: str) -> DatasetKey:
    """Destroy the data key of an encrypted dataset: its file can never be read again (every read
    raises DatasetKeyDestroyed). Risk officers only, with a justification; refused with
    DatasetInUse while a version trained or evaluated on it is servable or may become so, and
    with DatasetRetentionRunning until the policy's retention has passed since the last of them
    was retired. The key row (its new state) and the audit event are written in one transaction;
    a refusal is audited after the rollback."""
    try:
        return _destroy(dataset_id, actor=actor, justification=justification)
    except _Refused as exc:
        with transaction.atomic():
            dataset = Dataset.objects.get(pk=dataset_id)
            audit.record(
                audit.ACTION_REFUSED,
                actor=actor,
                target=dataset,
                data={"attempted": "destroy_dataset_key", "reason": exc.error.message},
            )
        raise exc.error from None
