"""The lifecycle state machine: the only code that writes ModelVersion.status.

Each function locks the version row, checks the actor's role and the current state, writes
the change with a conditional UPDATE (so SQLite, which ignores FOR UPDATE, is safe too),
records the audit event in the same transaction, and enqueues work only on commit."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from governance import audit
from governance.errors import WorkflowError
from governance.roles import DATA_SCIENTISTS, has_role
from lifecycle.errors import Forbidden, NotFound
from lifecycle.models import ModelVersion, Status

# (from, to) -> the role allowed to make that transition.
TRANSITIONS: dict[tuple[str, str], str] = {
    (Status.DRAFT, Status.CHECKING): DATA_SCIENTISTS,
}


class Refused(WorkflowError):
    """Raised inside a transition; the public function records it after the rollback."""

    def __init__(self, reason: str, *, version_pk: int, attempted: str, forbidden: bool):
        super().__init__(reason)
        self.version_pk, self.attempted, self.forbidden = version_pk, attempted, forbidden


def audited_refusals(func: Callable[..., ModelVersion]) -> Callable[..., ModelVersion]:
    """Run a transition; if it is refused, its transaction rolls back and the refusal is then
    recorded in a transaction of its own, so a crafted request always leaves a trace."""

    @functools.wraps(func)
    def wrapper(version_id: int, *, actor: Any, **kwargs: Any) -> ModelVersion:
        try:
            return func(version_id, actor=actor, **kwargs)
        except Refused as exc:
            with transaction.atomic():
                version = ModelVersion.objects.get(pk=exc.version_pk)
                audit.record(
                    audit.ACTION_REFUSED,
                    actor=actor,
                    target=version,
                    data={"attempted": exc.attempted, "reason": exc.message, "status": version.status},
                )
            if exc.forbidden:
                raise Forbidden(exc.message) from None
            raise WorkflowError(exc.message) from None

    return wrapper


def _transition(version: ModelVersion, *, to: str, actor: Any, **fields: Any) -> ModelVersion:
    """Move a locked version to `to` if the transition is allowed and the row still has the
    status we checked (conditional UPDATE: safe where FOR UPDATE is a no-op, as on SQLite)."""
    source = version.status
    attempted = f"{source}->{to}"
    role = TRANSITIONS.get((source, to))
    if role is None:
        raise Refused(
            f"{version} is {source.replace('_', ' ')}; it cannot move to {to.replace('_', ' ')}.",
            version_pk=version.pk,
            attempted=attempted,
            forbidden=False,
        )
    if not has_role(actor, role):
        raise Refused(
            f"Only members of {role} may move a version to {to.replace('_', ' ')}.",
            version_pk=version.pk,
            attempted=attempted,
            forbidden=True,
        )
    updated = ModelVersion.objects.filter(pk=version.pk, status=source).update(status=to, **fields)
    if updated != 1:
        raise WorkflowError(f"{version} changed while this request was deciding; reload and try again.")
    version.refresh_from_db()
    return version


def _locked(version_id: int) -> ModelVersion:
    version = ModelVersion.objects.select_for_update().select_related("registered_model").filter(pk=version_id).first()
    if version is None:
        raise NotFound("There is no such version.")
    return version


@audited_refusals
@transaction.atomic
def submit_version(version_id: int, *, actor: Any) -> ModelVersion:
    """draft -> checking, by a data scientist; the checks are enqueued once this commits."""
    version = _locked(version_id)
    version = _transition(version, to=Status.CHECKING, actor=actor, submitted_by=actor, submitted_at=timezone.now())
    audit.record(
        audit.VERSION_SUBMITTED,
        actor=actor,
        target=version,
        data={
            "from": Status.DRAFT,
            "to": Status.CHECKING,
            "artifact_sha256": version.artifact_sha256,
            "card_sha256": version.card.content_hash(),
        },
    )
    from governance.tasks import verify_artifact_task

    transaction.on_commit(lambda: verify_artifact_task.delay(version.pk))
    return version
