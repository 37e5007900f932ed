"""The rules of datasets at rest: a dataset's key is destroyed only once every version that
used it has ended and the policy's personal-data retention has passed. Reads only, like
governance.rules, whose Rule they return."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from core import audit
from core.actors import Actor
from core.models import AuditEvent
from core.roles import RISK_OFFICERS
from governance.models import Decision, DecisionKind
from governance.policies import active_policy
from governance.rules import YES, Rule, no, role_rule, status_label
from lifecycle.models import Dataset, ModelVersion, Status

# A version in any other status is servable, or may still become servable: its data is kept.
ENDED_STATUSES = (Status.RETIRED, Status.REJECTED)
_ENDING = {
    Status.RETIRED: (DecisionKind.RETIRE, audit.VERSION_RETIRED),
    Status.REJECTED: (DecisionKind.REJECT, audit.VERSION_REJECTED),
}


def versions_using(dataset: Dataset) -> Any:
    """The versions trained or evaluated on the dataset."""
    return ModelVersion.objects.filter(Q(training_dataset=dataset) | Q(evaluation_dataset=dataset)).select_related(
        "registered_model"
    )


def ended_at(version: ModelVersion) -> datetime | None:
    """When a retired (or rejected) version ended: its decision, or else the audit event that
    recorded the transition; None when nothing records it."""
    kind, action = _ENDING[Status(version.status)]
    moment = (
        Decision.objects.filter(version=version, kind=kind).order_by("-created_at").values_list("created_at", flat=True)
    ).first()
    if moment is None:
        moment = (
            AuditEvent.objects.filter(action=action, target_type="lifecycle.modelversion", target_id=str(version.pk))
            .order_by("-seq")
            .values_list("created_at", flat=True)
            .first()
        )
    return moment


def can_destroy_dataset_key(dataset: Dataset, actor: Actor, now: datetime | None = None) -> Rule:
    """A risk officer destroys an encrypted dataset's key once no version trained or evaluated on
    it is servable or on its way to be (every one retired or rejected), and the policy's
    personal-data retention has passed since the last of them ended."""
    rule = role_rule(actor, RISK_OFFICERS, "destroy a dataset's key")
    if not rule:
        return rule
    key = dataset.stored_key
    if key is None:
        return no(
            f"Dataset {dataset} is stored in clear (before encryption at rest): encrypt it first "
            "(manage.py encrypt_datasets), then destroy its key."
        )
    if key.destroyed_at is not None:
        return no(f"The key of dataset {dataset} was destroyed on {key.destroyed_at:%Y-%m-%d} already.")
    using = list(versions_using(dataset).order_by("registered_model__name", "version"))
    live = [v for v in using if v.status not in ENDED_STATUSES]
    if live:
        names = ", ".join(f"{v} ({status_label(v.status)})" for v in live[:5]) + (" and more" if len(live) > 5 else "")
        return Rule(
            False,
            f"Dataset {dataset} is used by {len(live)} version(s) that are servable or may become so: {names}. "
            "Its key can be destroyed once they are retired and the retention period has passed.",
            code="dataset_in_use",
        )
    ends = [ended_at(v) for v in using]
    unknown = [v for v, moment in zip(using, ends, strict=True) if moment is None]
    if unknown:
        return no(f"Nothing records when {unknown[0]} ended, so the retention of dataset {dataset} cannot be known.")
    if using:
        days = active_policy().personal_data_retention_days
        until = max(m for m in ends if m is not None) + timedelta(days=days)
        if (now or timezone.now()) < until:
            return Rule(
                False,
                f"Dataset {dataset} is kept until {until:%Y-%m-%d}: the policy retains personal data {days} days "
                "after the last version that used it was retired.",
                code="dataset_retention_running",
            )
    return YES
