"""Retention of the prediction log by month (serving.partitions) with the proof it needs: the
newest signed checkpoint, verified with its witness's cosignature (compliance.checkpoints), must
cover every seal of a month before the month's partition is dropped, so the roots that prove
its records were signed outside the database first. Run as the owner (`manage.py
retire_log_partitions`, with MIGRATION_DATABASE_URL): the runtime role cannot drop a table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from django.utils import timezone

from compliance.checkpoints import verify_checkpoints
from core.actors import Actor
from core.errors import DomainError
from governance.policies import active_policy
from serving import partitions


class CheckpointsUnproven(DomainError):
    """No month is retired while the signed checkpoints do not verify."""

    code = "log_retention_unproven"
    status = 409


@dataclass(frozen=True)
class RetentionRun:
    retired: list[str]  # the months retired, "YYYY-MM"
    kept: list[str]  # why each month past retention was kept


def retire_expired_months(
    *,
    retention_days: int | None = None,
    now: datetime | None = None,
    checkpoints: Path | str | None = None,
    only: date | None = None,
    actor: Actor = None,
) -> RetentionRun:
    """Retire every month of the log (or only `only`) that ended more than the retention period
    (the policy's personal-data retention unless given) ago and may go; name why the others stay."""
    now = now or timezone.now()
    days = retention_days if retention_days is not None else active_policy().personal_data_retention_days
    proven = verify_checkpoints(checkpoints)
    if not proven.ok or proven.latest is None:
        raise CheckpointsUnproven(f"No month is retired: the signed checkpoints do not verify ({proven.message}).")
    before = partitions.retirable_before(now, days)
    retired, kept = [], []
    for partition in partitions.partitions():
        month = partition.month
        if month is None or month >= before or (only is not None and month != only):
            continue
        try:
            partitions.retire_partition(
                month, retention_days=days, checkpoint_seq=proven.latest.seq, now=now, actor=actor
            )
        except partitions.PartitionKept as exc:
            kept.append(exc.message)
        else:
            retired.append(f"{month:%Y-%m}")
    return RetentionRun(retired, kept)
