"""On PostgreSQL the prediction log becomes a table partitioned by UTC month of created_at, with a
default partition for what no month holds: retention then drops whole months that were sealed and
checkpointed (serving.partitions), and readers that name a period read only its months.

The table is rebuilt and its rows copied (one transaction): its columns, storage and compression,
check and foreign-key constraints, indexes (each becomes a partitioned index, created on every
month), and append-only triggers come along. Its primary key becomes (id, created_at), since a
partitioned table's unique constraints hold its partition key, and public_id keeps a plain index
(a random UUID, unique by construction). So no table can reference the log by a constraint any
more: the six that did (outcomes, explanations, reviews, contestations, oversight items, business
keys) keep their columns and indexes without one (docs/decisions-integrity.md).

serving_predictionlog_add_partition(month) makes one month (owner only);
serving_predictionlog_add_partitions(ahead) makes this month and the next `ahead` ones, SECURITY
DEFINER so that beat (the runtime role, granted EXECUTE by compliance.db_roles) can. SQLite keeps
one table."""

import django.db.models.deletion
from django.db import migrations, models


TABLE = "serving_predictionlog"

FUNCTIONS = """
CREATE OR REPLACE FUNCTION serving_predictionlog_add_partition(month date) RETURNS text
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    first date := date_trunc('month', month)::date;
    name text := 'serving_predictionlog_p' || to_char(first, 'YYYY_MM');
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format(
        'CREATE TABLE %I PARTITION OF serving_predictionlog FOR VALUES FROM (%L) TO (%L)',
        name, to_char(first, 'YYYY-MM-DD') || ' 00:00:00+00',
        to_char(first + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00'
    );
    -- The row trigger is cloned from the parent. TRUNCATE is refused on the parent (and with it
    -- every partition); a partition itself grants nothing to the runtime role, and a trigger of
    -- its own would stop the owner's test flush, which lifts the parent's triggers only.
    RETURN name;
END;
$$;
REVOKE ALL ON FUNCTION serving_predictionlog_add_partition(date) FROM PUBLIC;
CREATE OR REPLACE FUNCTION serving_predictionlog_add_partitions(ahead integer) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    this_month date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    made text;
BEGIN
    FOR i IN 0..least(greatest(ahead, 0), 24) LOOP
        made := serving_predictionlog_add_partition((this_month + make_interval(months => i))::date);
        IF made IS NOT NULL THEN
            RETURN NEXT made;
        END IF;
    END LOOP;
END;
$$;
REVOKE ALL ON FUNCTION serving_predictionlog_add_partitions(integer) FROM PUBLIC;
"""

DROP_FUNCTIONS = """
DROP FUNCTION IF EXISTS serving_predictionlog_add_partitions(integer);
DROP FUNCTION IF EXISTS serving_predictionlog_add_partition(date);
"""

TRIGGERS = f"""
CREATE TRIGGER serving_predictionlog_guard_rows BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION serving_predictionlog_guard();
CREATE TRIGGER serving_predictionlog_no_truncate BEFORE TRUNCATE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION serving_predictionlog_guard();
"""

MONTHS_AHEAD = 3


def _rebuild(cursor, *, partitioned: bool) -> None:
    """Copy the log into a new table (partitioned or plain) that keeps everything it had."""
    cursor.execute(
        "SELECT conindid::regclass::text FROM pg_constraint WHERE conrelid = %s::regclass AND contype IN ('p', 'u')",
        [TABLE],
    )
    backing = {row[0] for row in cursor.fetchall()}
    cursor.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s", [TABLE]
    )
    indexes = [(n, d.replace(" ON ONLY ", " ON ")) for n, d in cursor.fetchall() if n not in backing]
    indexes = [(n, d) for n, d in indexes if n != "serving_log_public_id"]
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
        [TABLE],
    )
    foreign = cursor.fetchall()
    cursor.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {TABLE}")
    start = cursor.fetchone()[0]
    cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id DROP IDENTITY IF EXISTS")
    cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {TABLE}_old")
    cursor.execute(
        f"CREATE TABLE {TABLE} (LIKE {TABLE}_old INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE "
        f"INCLUDING COMPRESSION){' PARTITION BY RANGE (created_at)' if partitioned else ''}"
    )
    if partitioned:
        cursor.execute(TRIGGERS)  # before the partitions: they clone its row trigger
        cursor.execute(FUNCTIONS)
        cursor.execute(f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT")
        cursor.execute(
            f"SELECT serving_predictionlog_add_partition(m::date) FROM (SELECT DISTINCT "
            f"date_trunc('month', created_at AT TIME ZONE 'UTC') AS m FROM {TABLE}_old) months"
        )
        cursor.execute("SELECT serving_predictionlog_add_partitions(%s)", [MONTHS_AHEAD])
    cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {TABLE}_old")
    cursor.execute(f"DROP TABLE {TABLE}_old")
    if not partitioned:
        cursor.execute(DROP_FUNCTIONS)
        cursor.execute(TRIGGERS)
    cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (START WITH {start})")
    if partitioned:
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id, created_at)")
        cursor.execute(f"CREATE INDEX serving_log_public_id ON {TABLE} (public_id)")
    else:
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id)")
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_public_id_key UNIQUE (public_id)")
    for _name, definition in indexes:
        cursor.execute(definition)
    for name, definition in foreign:
        cursor.execute(f'ALTER TABLE {TABLE} ADD CONSTRAINT "{name}" {definition}')
    cursor.execute(f"ANALYZE {TABLE}")


def partition(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            _rebuild(cursor, partitioned=True)


def unpartition(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            _rebuild(cursor, partitioned=False)


class Migration(migrations.Migration):
    dependencies = [
        ("serving", "0021_batchjob_id_columns"),
    ]

    operations = [
        migrations.AlterField(
            model_name="contestation",
            name="record",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="contestations",
                to="serving.predictionlog",
            ),
        ),
        migrations.AlterField(
            model_name="decisionreview",
            name="record",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="reviews",
                to="serving.predictionlog",
            ),
        ),
        migrations.AlterField(
            model_name="explanation",
            name="record",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="explanations",
                to="serving.predictionlog",
            ),
        ),
        migrations.AlterField(
            model_name="oversightitem",
            name="record",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="oversight_items",
                to="serving.predictionlog",
            ),
        ),
        migrations.AlterField(
            model_name="predictionkey",
            name="record",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="keys",
                to="serving.predictionlog",
                to_field="public_id",
            ),
        ),
        migrations.AlterField(
            model_name="predictionoutcome",
            name="record",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="actuals",
                to="serving.predictionlog",
            ),
        ),
        migrations.RunPython(partition, unpartition),
    ]
