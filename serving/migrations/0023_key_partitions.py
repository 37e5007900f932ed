"""The business keys' lookup index follows its records' months: each key row carries its record's
created_at (filled here from the log; a key whose record is gone is dropped, as it finds
nothing), and on PostgreSQL the table becomes partitioned by UTC month of created_at like the
log (0022), with a default partition, so retention detaches and drops a month's keys with the
month's records (serving.partitions) instead of deleting them row by row.

The table is rebuilt and its rows copied (one transaction), keeping its storage and compression,
check constraints and indexes (the key index becomes a partitioned index, one per month). Its
primary key becomes (id, created_at) and its one-key-per-row constraint (record_id, row,
created_at), since a partitioned table's unique constraints hold its partition key: as a key's
created_at is its record's, a record's rows are still unique (docs/decisions-integrity.md).

serving_predictionlog_add_partition(month) now makes the month's partition of both tables (each
if missing); serving_predictionlog_add_partitions stays the runtime role's only way to make
them. SQLite keeps one table."""

import importlib

from django.db import migrations, models

LOG = "serving_predictionlog"
TABLE = "serving_predictionkey"
log_partitions = importlib.import_module("serving.migrations.0022_log_partitions")

FUNCTION = """
CREATE OR REPLACE FUNCTION serving_predictionlog_add_partition(month date) RETURNS text
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    first date := date_trunc('month', month)::date;
    name text := 'serving_predictionlog_p' || to_char(first, 'YYYY_MM');
    keys text := 'serving_predictionkey_p' || to_char(first, 'YYYY_MM');
    bounds text := format('FOR VALUES FROM (%L) TO (%L)', to_char(first, 'YYYY-MM-DD') || ' 00:00:00+00',
        to_char(first + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00');
    made boolean := false;
BEGIN
    IF to_regclass(name) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF serving_predictionlog ', name) || bounds;
        made := true;
    END IF;
    -- A record's business keys live in its month (their created_at is the record's): retention
    -- drops both months together (serving.partitions).
    IF to_regclass(keys) IS NULL
        AND (SELECT relkind FROM pg_class WHERE oid = to_regclass('serving_predictionkey')) = 'p' THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF serving_predictionkey ', keys) || bounds;
        made := true;
    END IF;
    -- The log's row trigger is cloned from its parent. TRUNCATE is refused on the parent (and
    -- with it every partition); a partition itself grants nothing to the runtime role, and a
    -- trigger of its own would stop the owner's test flush, which lifts the parent's triggers only.
    RETURN CASE WHEN made THEN name END;
END;
$$;
REVOKE ALL ON FUNCTION serving_predictionlog_add_partition(date) FROM PUBLIC;
"""


def _rebuild(cursor, *, partitioned: bool) -> None:
    """Copy the keys into a new table (partitioned or plain) that keeps everything it had."""
    cursor.execute(
        "SELECT conindid::regclass::text FROM pg_constraint WHERE conrelid = %s::regclass AND contype IN ('p', 'u')",
        [TABLE],
    )
    backing = {row[0] for row in cursor.fetchall()}
    cursor.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s", [TABLE]
    )
    indexes = [(n, d.replace(" ON ONLY ", " ON ")) for n, d in cursor.fetchall() if n not in backing]
    cursor.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {TABLE}")
    start = cursor.fetchone()[0]
    cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id DROP IDENTITY IF EXISTS")
    cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {TABLE}_old")
    cursor.execute(
        f"CREATE TABLE {TABLE} (LIKE {TABLE}_old INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE "
        f"INCLUDING COMPRESSION){' PARTITION BY RANGE (created_at)' if partitioned else ''}"
    )
    if partitioned:
        cursor.execute(f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT")
        cursor.execute(FUNCTION)
        # a keys partition beside every month of the log's (the log's exist: only the keys' are made)
        cursor.execute(
            "SELECT serving_predictionlog_add_partition(to_date(substring(c.relname from '_p(\\d{4}_\\d{2})$'), "
            "'YYYY_MM')) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass AND c.relname ~ '_p\\d{4}_\\d{2}$'",
            [LOG],
        )
        # each key takes its record's created_at; a key of no record (none should be left:
        # retention deleted them) is not copied
        cursor.execute(
            f"INSERT INTO {TABLE} (id, record_id, \"row\", \"key\", created_at) "  # noqa: S608
            f"SELECT k.id, k.record_id, k.\"row\", k.\"key\", l.created_at FROM {TABLE}_old k "
            f"JOIN {LOG} l ON l.public_id = k.record_id"
        )
    else:
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {TABLE}_old")  # noqa: S608
        cursor.execute(log_partitions.FUNCTIONS)  # the log's months only, as 0022 made them
    cursor.execute(f"DROP TABLE {TABLE}_old")
    cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (START WITH {start})")
    if partitioned:
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id, created_at)")
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT one_key_per_row UNIQUE (record_id, \"row\", created_at)")
    else:
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id)")
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT one_key_per_row UNIQUE (record_id, \"row\")")
    for _name, definition in indexes:
        cursor.execute(definition)
    cursor.execute(f"ANALYZE {TABLE}")


def partition(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            _rebuild(cursor, partitioned=True)
    else:
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {TABLE} SET created_at = (SELECT l.created_at FROM {LOG} l "  # noqa: S608
                f"WHERE l.public_id = {TABLE}.record_id)"
            )
            cursor.execute(f"DELETE FROM {TABLE} WHERE created_at IS NULL")  # noqa: S608


def unpartition(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            _rebuild(cursor, partitioned=False)


class Migration(migrations.Migration):
    dependencies = [
        ("serving", "0022_log_partitions"),
    ]

    operations = [
        migrations.AddField(
            model_name="predictionkey",
            name="created_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.RunPython(partition, unpartition),
        migrations.AlterField(
            model_name="predictionkey",
            name="created_at",
            field=models.DateTimeField(),
        ),
    ]
