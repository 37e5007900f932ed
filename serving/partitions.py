"""The prediction log's monthly partitions on PostgreSQL (migration 0022), and retention by
partition: a month of records is retired whole, by detaching and dropping its partition (and its
business keys' partition, migration 0023), once it is older than the retention period, every
record in it is sealed, every seal touching it is covered by a signed checkpoint, and no legal
hold is in force on a model it holds.

Retiring a month is recorded, in the same transaction, by an audit event naming the month, its
records' count and id range, and how many records of each seal it retired. Verification reads
these (chained) events: a seal that lost records to retention is verified from its stored tree
(whose SHA-256 its seal event recorded) for the leaves retired, and from the records themselves
for the leaves left (serving.seals); nothing retired is named missing.

Dropping a table is the owner's right only: the runtime role can make next months' partitions
(through a SECURITY DEFINER function, what beat does daily) but never drop one. SQLite keeps one
table: nothing here applies to it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from core import audit
from core.actors import Actor
from core.errors import DomainError
from core.models import AuditEvent
from serving.models import LegalHold, PredictionKey, PredictionLog, PredictionSeal, SealTree

PARENT = PredictionLog._meta.db_table
DEFAULT = f"{PARENT}_default"
# The business keys' lookup index, partitioned by the same months (migration 0023): a key's
# created_at is its record's, so a month's keys go with its records.
KEYS = PredictionKey._meta.db_table
MONTHS_AHEAD = 3
# The least retention: the AI Act keeps a high-risk system's logs at least six months (art. 19),
# as the policy's own lower bound does (governance.models.Policy).
MIN_RETENTION_DAYS = 183
# What the runtime role may call (compliance.db_roles grants EXECUTE on it).
RUNTIME_FUNCTIONS = ("serving_predictionlog_add_partitions(integer)",)
_MONTH = re.compile(r"_p(\d{4})_(\d{2})$")


class PartitionKept(DomainError):
    """A month's partition that retention may not drop (yet, or while a hold is in force)."""

    code = "log_partition_kept"
    status = 409


@dataclass(frozen=True)
class Partition:
    name: str
    month: date | None  # its first day (UTC); None for the default partition

    @property
    def ends(self) -> datetime | None:
        return None if self.month is None else month_start(next_month(self.month))


def month_start(month: date) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def partition_name(month: date, table: str = PARENT) -> str:
    return f"{table}_p{month.year:04d}_{month.month:02d}"


def is_partitioned(table: str = PARENT) -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
    return bool(row and row[0] == "p")


def partitions(table: str = PARENT) -> list[Partition]:
    """The log's (or the keys', KEYS) partitions, oldest month first, the default one last ([]
    unless partitioned)."""
    if not is_partitioned(table):
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s)",
            [table],
        )
        names = [row[0] for row in cursor.fetchall()]
    found = []
    for name in names:
        match = _MONTH.search(name) if name.startswith(f"{table}_p") else None
        found.append(Partition(name, date(int(match[1]), int(match[2]), 1) if match else None))
    return sorted(found, key=lambda p: (p.month is None, p.month or date.min))


def add_partitions(ahead: int = MONTHS_AHEAD) -> list[str]:
    """Make this month's partition and the next `ahead` months' if missing (any role: the
    function runs as the owner and only creates). The names made."""
    if not is_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute("SELECT serving_predictionlog_add_partitions(%s)", [ahead])
        return [row[0] for row in cursor.fetchall()]


def add_partition(month: date) -> str | None:
    """The owner only: make the partition of `month` (a past one, before copying or restoring its
    records), the log's and its business keys'. The log's name, or None if both existed."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT serving_predictionlog_add_partition(%s)", [date(month.year, month.month, 1)])
        return cursor.fetchone()[0]


@dataclass(frozen=True)
class MonthContents:
    records: int
    unsealed: int
    first_record: int | None
    last_record: int | None
    seals: dict[int, int]  # seal id -> how many of its records the month holds
    models: list[str]


def contents(partition: Partition) -> MonthContents:
    """What one partition holds (one pass over it, read directly: no pruning needed)."""
    table = connection.ops.quote_name(partition.name)  # a name of ours, quoted
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT seal_id, count(*), min(id), max(id) FROM {table} GROUP BY seal_id")  # noqa: S608
        groups = cursor.fetchall()
        cursor.execute(f"SELECT DISTINCT model_name FROM {table} ORDER BY 1")  # noqa: S608
        models = [row[0] for row in cursor.fetchall()]
    return MonthContents(
        records=sum(g[1] for g in groups),
        unsealed=sum(g[1] for g in groups if g[0] is None),
        first_record=min((g[2] for g in groups), default=None),
        last_record=max((g[3] for g in groups), default=None),
        seals={g[0]: g[1] for g in groups if g[0] is not None},
        models=models,
    )


def retirable_before(now: datetime, retention_days: int) -> date:
    """Months that start before this day's month have ended at least `retention_days` ago."""
    cutoff = now - timedelta(days=retention_days)
    return date(cutoff.year, cutoff.month, 1)


def _refusals(partition: Partition, found: MonthContents, checkpoint_seq: int) -> list[str]:
    why = []
    if found.unsealed:
        why.append(f"{found.unsealed} of its records are not sealed yet")
    held = sorted(
        LegalHold.objects.filter(model_name__in=found.models, released_at__isnull=True)
        .values_list("model_name", flat=True)
        .distinct()
    )
    if held:
        why.append(f"a legal hold is in force on {', '.join(held)}")
    seals = PredictionSeal.objects.filter(pk__in=found.seals).values_list("pk", "audit_seq")
    late = sorted(pk for pk, seq in seals if seq is None or seq > checkpoint_seq)
    if late:
        why.append(f"seal #{late[0]} is not covered by a signed checkpoint yet (newest: audit-chain #{checkpoint_seq})")
    treed = set(SealTree.objects.filter(pk__in=found.seals).values_list("pk", flat=True))
    untreed = sorted(set(found.seals) - treed)
    if untreed:
        why.append(f"seal #{untreed[0]} has no stored tree to prove its retired leaves by")
    return why


@transaction.atomic
def retire_partition(
    month: date, *, retention_days: int, checkpoint_seq: int, now: datetime | None = None, actor: Actor = None
) -> AuditEvent:
    """Detach and drop the partition of `month` (as the owner) and its business keys' partition,
    and record the retirement. Raises PartitionKept naming why when it may not."""
    now = now or timezone.now()
    if retention_days < MIN_RETENTION_DAYS:
        raise PartitionKept(f"Retention is at least {MIN_RETENTION_DAYS} days; {retention_days} were asked for.")
    partition = Partition(partition_name(month), date(month.year, month.month, 1))
    if partition not in partitions():
        raise PartitionKept(f"The prediction log has no partition for {month:%Y-%m}.")
    if partition.month is None or partition.month >= retirable_before(now, retention_days):
        raise PartitionKept(f"{month:%Y-%m} ended less than {retention_days} days ago: retention is still running.")
    table = connection.ops.quote_name(partition.name)
    with connection.cursor() as cursor:
        # No record written or sealed into it while it is looked at and dropped.
        cursor.execute(f"LOCK TABLE {table} IN SHARE MODE")
    found = contents(partition)
    refused = _refusals(partition, found, checkpoint_seq)
    if refused:
        raise PartitionKept(f"{month:%Y-%m} is kept: " + "; ".join(refused) + ".")
    keys_name = partition_name(month, KEYS)
    keys_table = connection.ops.quote_name(keys_name)
    with connection.cursor() as cursor:
        # the business keys' lookup index (operational) loses its month with the records: the
        # month's keys are its records' (a key's created_at is its record's)
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [keys_name])
        keyed = cursor.fetchone()[0]
        if keyed:
            cursor.execute(f"SELECT count(*) FROM {keys_table}")  # noqa: S608
            keys = cursor.fetchone()[0]
        else:  # (a month made before its keys had partitions: they wait in the default one)
            cursor.execute(
                f"DELETE FROM {connection.ops.quote_name(KEYS)} WHERE created_at >= %s AND created_at < %s",  # noqa: S608
                [month_start(month), partition.ends],
            )
            keys = cursor.rowcount
        # deferred foreign-key checks first: a table with pending trigger events cannot be dropped
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ALTER TABLE {connection.ops.quote_name(PARENT)} DETACH PARTITION {table}")
        cursor.execute(f"DROP TABLE {table}")
        if keyed:
            cursor.execute(f"ALTER TABLE {connection.ops.quote_name(KEYS)} DETACH PARTITION {keys_table}")
            cursor.execute(f"DROP TABLE {keys_table}")
    return audit.record(
        audit.LOG_PARTITION_RETIRED,
        actor=actor,
        data={
            "partition": partition.name,
            "month": f"{month:%Y-%m}",
            "from": month_start(partition.month).isoformat(),
            "to": month_start(next_month(partition.month)).isoformat(),
            "records": found.records,
            "first_record": found.first_record,
            "last_record": found.last_record,
            "seals": {str(pk): count for pk, count in sorted(found.seals.items())},
            "models": found.models,
            "business_keys_partition": keys_name if keyed else None,
            "business_keys_dropped": keys,
            "retention_days": retention_days,
            "checkpoint_seq": checkpoint_seq,
        },
    )


@dataclass(frozen=True)
class Retired:
    """What retention retired, from the chained retirement events: per seal, how many of its
    records, and the id ranges they lay in."""

    by_seal: dict[int, int]
    ranges: list[tuple[int, int]]

    def holds(self, pk: int) -> bool:
        return any(first <= pk <= last for first, last in self.ranges)


def retired() -> Retired:
    by_seal: dict[int, int] = {}
    ranges = []
    for data in AuditEvent.objects.filter(action=audit.LOG_PARTITION_RETIRED).values_list("data", flat=True):
        if not isinstance(data, dict):
            continue
        for pk, count in (data.get("seals") or {}).items():
            by_seal[int(pk)] = by_seal.get(int(pk), 0) + int(count)
        if data.get("first_record") is not None:
            ranges.append((int(data["first_record"]), int(data["last_record"])))
    return Retired(by_seal, ranges)
