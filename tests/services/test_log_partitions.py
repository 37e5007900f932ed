"""The prediction log and its business keys partitioned by month on PostgreSQL (serving.partitions,
migrations 0022 and 0023): rows, and their keys, land in their month's partition, the runtime
role can insert and make next months' partitions but never drop one, and retention drops a whole
month (its records' and their keys' partitions) that is past retention, sealed, checkpointed and
under no hold, recording it in the audit trail, after which verification still passes naming no
record missing (a seal that straddled the month is proven from its stored tree), while a record
deleted behind the application's back is still named. Lookups by business key find a key's rows
in every month."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bench import logfill
from compliance import checkpoints
from compliance.log_retention import retire_expired_months
from core import audit
from core.models import AuditEvent
from serving import erasure, merkle, partitions, seals, selectors
from serving.models import PredictionKey, PredictionLog
from serving.seals import verify_seals
from tests.compliance.test_checkpoints import checkpoint_dir  # noqa: F401 (a fixture)
from tests.services.test_db_roles import runtime_role, runtime_session  # noqa: F401 (a fixture)
from tests.serving.conftest import rows

RETENTION = 183
RECORDS = 40


def old_month(now: Any, days: int) -> date:
    then = now - timedelta(days=days)
    return date(then.year, then.month, 1)


def where(public_ids: list[str], table: str = "serving_predictionlog", column: str = "public_id") -> dict[str, int]:
    """partition -> how many of these records (or, in the keys' table, their keys) it holds."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tableoid::regclass::text, count(*) FROM {table} WHERE {column} = ANY(%s::uuid[]) GROUP BY 1",  # noqa: S608
            [public_ids],
        )
        return dict(cursor.fetchall())


def keys_where(public_ids: list[str]) -> dict[str, int]:
    return where(public_ids, partitions.KEYS, "record_id")


@pytest.fixture
def template(production: Any, keyed: Any, german: Any) -> PredictionLog:
    """One answered record of this month, to copy (bench.logfill) into older months."""
    name = production.registered_model.name
    answered = keyed.post(f"/api/v1/models/{name}/predict", {"instances": rows(german, 1)}, format="json")
    assert answered.status_code == 200, answered.content
    return PredictionLog.objects.get(public_id=answered.json()["prediction_ids"][0].split(".")[0])


@pytest.fixture
def signed(settings: Any, checkpoint_dir: Path) -> Iterator[Path]:  # noqa: F811
    settings.CHECKPOINT_WITNESS_KEY = hashlib.sha256(b"partitions test witness").hexdigest()
    yield checkpoint_dir


def fill_two_months(production: Any, template: PredictionLog, month: date) -> None:
    """RECORDS records over the last days of `month` and the first of the next one, whose
    partitions are made first (the test database was migrated empty: only this month on)."""
    partitions.add_partition(month)
    partitions.add_partition(partitions.next_month(month))
    start = partitions.month_start(partitions.next_month(month)) - timedelta(days=5)
    logfill.fill_log(
        production, template, first=0, last=RECORDS, start=start, span=timedelta(days=10),
        business_key=logfill.business_key_of,
    )  # fmt: skip


@pytest.mark.django_db
def test_partitions_are_made_ahead_and_records_land_in_their_month(production, template):
    now = timezone.now()
    this = date(now.year, now.month, 1)
    made = {p.month for p in partitions.partitions()}
    ahead = [this]
    for _ in range(partitions.MONTHS_AHEAD):
        ahead.append(partitions.next_month(ahead[-1]))
    assert set(ahead) <= made and None in made  # this month, the next three, and the default
    month = old_month(now, 300)
    fill_two_months(production, template, month)
    records = PredictionLog.objects.exclude(pk=template.pk).order_by("pk")
    early = [str(r.public_id) for r in records if r.created_at < partitions.month_start(partitions.next_month(month))]
    late = [str(r.public_id) for r in records if str(r.public_id) not in early]
    assert early and late
    assert where(early) == {partitions.partition_name(month): len(early)}
    assert where(late) == {partitions.partition_name(partitions.next_month(month)): len(late)}
    assert where([str(template.public_id)]) == {partitions.partition_name(this): 1}
    # a record's business keys lie in its month's partition of the keys
    assert keys_where(early) == {partitions.partition_name(month, partitions.KEYS): len(early)}
    assert keys_where(late) == {partitions.partition_name(partitions.next_month(month), partitions.KEYS): len(late)}
    made_keys = {p.month for p in partitions.partitions(partitions.KEYS)}
    assert made_keys == {p.month for p in partitions.partitions()}  # the same months, and a default
    # a period's query reads only its months' partitions
    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN SELECT count(*) FROM serving_predictionlog WHERE created_at >= %s AND created_at < %s",
            [partitions.month_start(month), partitions.month_start(partitions.next_month(month))],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert partitions.partition_name(month) in plan
    assert partitions.partition_name(this) not in plan and partitions.DEFAULT not in plan


def test_the_runtime_role_inserts_and_makes_partitions_but_never_drops_one(
    runtime_role,  # noqa: F811
    production,
    keyed,
    german,
    eager_tasks,
):
    name = production.registered_model.name
    now = timezone.now()
    further = date(now.year, now.month, 1)
    for _ in range(partitions.MONTHS_AHEAD + 1):
        further = partitions.next_month(further)
    with runtime_session(runtime_role):
        answered = keyed.post(f"/api/v1/models/{name}/predict", {"instances": rows(german, 2)}, format="json")
        assert answered.status_code == 200, answered.content
        assert partitions.add_partitions(partitions.MONTHS_AHEAD + 1) == [partitions.partition_name(further)]
        for statement in (
            f"DROP TABLE {partitions.partition_name(further)}",
            f"ALTER TABLE serving_predictionlog DETACH PARTITION {partitions.partition_name(further)}",
            f"SELECT serving_predictionlog_add_partition('{further:%Y-%m-%d}'::date)",
        ):
            with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(statement)
    public_id = answered.json()["prediction_ids"][0].split(".")[0]
    assert where([public_id]) == {partitions.partition_name(date(now.year, now.month, 1)): 1}


@pytest.mark.django_db
def test_retention_drops_a_sealed_checkpointed_month_and_verification_names_nothing_missing(
    production, template, signed
):
    now = timezone.now()
    month = old_month(now, 300)
    fill_two_months(production, template, month)
    logfill.seal(batch_size=15)  # the first seal holds this month's template and old records
    assert PredictionKey.objects.count() == RECORDS
    checkpoints.write_checkpoint()
    kept_month = partitions.next_month(partitions.next_month(month))
    partitions.add_partition(kept_month)  # an empty month, retired too

    run = retire_expired_months(retention_days=RETENTION, checkpoints=signed, actor=None)

    assert run.retired == [f"{m:%Y-%m}" for m in (month, partitions.next_month(month), kept_month)], run.kept
    names = {p.name for p in partitions.partitions()}
    assert partitions.partition_name(month) not in names
    assert list(PredictionLog.objects.values_list("pk", flat=True)) == [template.pk]
    # the lookup index lost what it pointed at: the months' keys partitions went with the records'
    assert PredictionKey.objects.count() == 0
    key_months = {p.month for p in partitions.partitions(partitions.KEYS)}
    assert key_months == {p.month for p in partitions.partitions()} and month not in key_months
    events = AuditEvent.objects.filter(action=audit.LOG_PARTITION_RETIRED).order_by("seq")
    assert [e.data["month"] for e in events] == run.retired
    assert sum(e.data["records"] for e in events) == RECORDS
    assert sum(e.data["business_keys_dropped"] for e in events) == RECORDS
    assert events[0].data["business_keys_partition"] == partitions.partition_name(month, partitions.KEYS)
    assert events[0].data["retention_days"] == RETENTION and events[0].data["seals"]
    out = StringIO()
    call_command("verify_audit", "--checkpoints", str(signed), stdout=out)
    text = out.getvalue()
    assert "Verification PASSED" in text and "Checkpoints OK" in text and "missing" not in text, text
    assert f"{RECORDS} records retired by retention proven by their seals' stored trees" in text
    assert verify_seals().seals_checked == 3  # 41 records in seals of 15
    # the record left in a seal that lost records to retention is still proven by its stored path
    template.refresh_from_db()
    proof = seals.inclusion_proof(template)
    assert proof is not None and proof["seal"] == template.seal_id
    assert merkle.verify_inclusion(
        proof["leaf_index"], proof["tree_size"], bytes.fromhex(proof["leaf_hash"]),
        [bytes.fromhex(h) for h in proof["audit_path"]], bytes.fromhex(proof["root"]),
    )  # fmt: skip

    # retirement does not hide a record deleted behind the application's back
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE serving_predictionlog DISABLE TRIGGER USER")
        cursor.execute("DELETE FROM serving_predictionlog WHERE id = %s", [template.pk])
        cursor.execute("ALTER TABLE serving_predictionlog ENABLE TRIGGER USER")
    broken = verify_seals()
    assert not broken.ok and "1 are left" not in broken.message and "retention retired 14" in broken.message


@pytest.mark.django_db
def test_retention_keeps_an_unsealed_a_held_an_unchecked_or_a_recent_month(production, template, signed, risk_officer):
    now = timezone.now()
    month = old_month(now, 300)
    fill_two_months(production, template, month)

    def refused(month: date, checkpoint_seq: int = 10**9) -> str:
        with pytest.raises(partitions.PartitionKept) as kept:
            partitions.retire_partition(month, retention_days=RETENTION, checkpoint_seq=checkpoint_seq)
        return kept.value.message

    assert f"{len(_in(month))} of its records are not sealed yet" in refused(month)
    logfill.seal(batch_size=15)
    assert "is not covered by a signed checkpoint" in refused(month, checkpoint_seq=0)
    hold = erasure.place_hold(model_name=production.registered_model.name, reason="Litigation.", actor=risk_officer)
    assert f"a legal hold is in force on {production.registered_model.name}" in refused(month)
    this = date(now.year, now.month, 1)
    assert "retention is still running" in refused(this)
    with pytest.raises(partitions.PartitionKept):
        partitions.retire_partition(month, retention_days=30, checkpoint_seq=10**9)
    assert partitions.partition_name(month) in {p.name for p in partitions.partitions()}
    assert not AuditEvent.objects.filter(action=audit.LOG_PARTITION_RETIRED).exists()
    erasure.release_hold(hold.pk, actor=risk_officer)
    partitions.retire_partition(month, retention_days=RETENTION, checkpoint_seq=10**9)
    assert AuditEvent.objects.filter(action=audit.LOG_PARTITION_RETIRED).count() == 1


def _in(month: date) -> list[int]:
    start = partitions.month_start(month)
    return list(
        PredictionLog.objects.filter(
            created_at__gte=start, created_at__lt=partitions.month_start(partitions.next_month(month))
        ).values_list("pk", flat=True)
    )


def explain(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.django_db
def test_exports_reports_and_verification_read_only_the_partitions_of_their_period(production, template):
    now = timezone.now()
    month = old_month(now, 300)
    fill_two_months(production, template, month)
    logfill.seal(batch_size=15)  # the first seal holds this month's template; the other two, old records only
    this, old = partitions.partition_name(date(now.year, now.month, 1)), partitions.partition_name(month)
    later = partitions.partition_name(partitions.next_month(month))
    day = partitions.month_start(partitions.next_month(month)) - timedelta(days=2)

    exported = selectors.logged_predictions(since=day, until=day + timedelta(days=1)).order_by("pk")
    plan = exported.explain()
    assert old in plan and later not in plan and this not in plan and partitions.DEFAULT not in plan, plan

    since, until = partitions.month_start(month), partitions.month_start(partitions.next_month(month))
    with CaptureQueriesContext(connection) as report:
        summary = selectors.serving_summary(version_id=production.pk, since=since, until=until)
    assert summary
    plans = [explain(q["sql"]) for q in report.captured_queries if "serving_predictionlog" in q["sql"]]
    assert plans and all(old in p and later not in p and this not in p for p in plans), plans

    with CaptureQueriesContext(connection) as verified:
        assert verify_seals().ok
    plans = [explain(q["sql"]) for q in verified.captured_queries if '"serving_predictionlog"."seal_id" = ' in q["sql"]]
    assert len(plans) == 3, [q["sql"][:200] for q in verified.captured_queries]
    assert sum(this not in p and partitions.DEFAULT not in p for p in plans) == 2, plans


@pytest.mark.django_db
def test_a_business_key_is_found_in_every_month_and_a_period_reads_only_its_months_keys(production, template):
    now = timezone.now()
    month = old_month(now, 300)
    later = partitions.next_month(month)
    partitions.add_partition(month)
    partitions.add_partition(later)
    start = partitions.month_start(later) - timedelta(days=5)
    logfill.fill_log(
        production, template, first=0, last=RECORDS, start=start, span=timedelta(days=10),
        business_key=lambda i: f"APP-{i % 2}",
    )  # fmt: skip
    keyed_zero = PredictionLog.objects.filter(business_keys_json='["APP-0"]')
    in_month = {r.public_id for r in keyed_zero if r.created_at < partitions.month_start(later)}
    assert 0 < len(in_month) < RECORDS // 2

    with CaptureQueriesContext(connection) as looked_up:
        found = selectors.decisions_with_key("APP-0")
    log_reads = [explain(q["sql"]) for q in looked_up.captured_queries if '"serving_predictionlog"' in q["sql"]]
    this = partitions.partition_name(date(now.year, now.month, 1))
    assert log_reads and all(this not in p and partitions.DEFAULT not in p for p in log_reads), log_reads
    assert {r.public_id for r, _ in found} == set(keyed_zero.values_list("public_id", flat=True))
    assert len(found) == RECORDS // 2 and all(row == 0 for _, row in found)
    assert [r.created_at for r, _ in found] == sorted((r.created_at for r, _ in found), reverse=True)
    assert {r.created_at.month for r, _ in found} == {month.month, later.month}  # both months

    since, until = partitions.month_start(month), partitions.month_start(later)
    logged = selectors.logged_predictions(business_key="APP-0", since=since, until=until)
    assert set(logged.values_list("public_id", flat=True)) == in_month
    plan = logged.explain()
    keys_month, keys_later = (partitions.partition_name(m, partitions.KEYS) for m in (month, later))
    assert keys_month in plan and keys_later not in plan and f"{partitions.KEYS}_default" not in plan, plan
