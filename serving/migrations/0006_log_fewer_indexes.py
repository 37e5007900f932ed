"""Fewer indexes on the prediction log: every answer's INSERT writes every index.

Dropped: the FK index on version (the (version, created_at) index serves the same lookups), the
LIKE pattern indexes of model_name and request_id (only exact matches are looked up), and the
full FK indexes on api_key and user, replaced by partial ones holding only the rows that name a
key or a user. Only indexes are dropped and created: the foreign keys themselves are not
touched, so a large log is not re-validated. (The names are Django's, the same on every
database; IF EXISTS covers the pattern indexes, which only PostgreSQL has.)"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# (name, column, LIKE pattern index too): the indexes Django made for db_index=True fields
OLD_INDEXES = (
    ("serving_predictionlog_version_id_16a21000", "version_id", False),
    ("serving_predictionlog_api_key_id_ae13823e", "api_key_id", False),
    ("serving_predictionlog_user_id_51daec1d", "user_id", False),
    ("serving_predictionlog_model_name_d4c60f76", "model_name", True),
    ("serving_predictionlog_request_id_ba7d1ea7", "request_id", True),
)


def drop_old_indexes(apps, schema_editor):
    for name, _column, like in OLD_INDEXES:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')
        if like:
            schema_editor.execute(f'DROP INDEX IF EXISTS "{name}_like"')


def restore_old_indexes(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    for name, column, like in OLD_INDEXES:
        schema_editor.execute(f'CREATE INDEX "{name}" ON "serving_predictionlog" ("{column}")')
        if like and postgres:
            schema_editor.execute(
                f'CREATE INDEX "{name}_like" ON "serving_predictionlog" ("{column}" varchar_pattern_ops)'
            )


class Migration(migrations.Migration):
    dependencies = [
        ("lifecycle", "0002_review_round"),
        ("serving", "0005_log_lz4_compression"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="predictionlog",
                    name="api_key",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="serving.apikey",
                    ),
                ),
                migrations.AlterField(
                    model_name="predictionlog",
                    name="model_name",
                    field=models.CharField(max_length=64),
                ),
                migrations.AlterField(
                    model_name="predictionlog",
                    name="request_id",
                    field=models.CharField(blank=True, max_length=200),
                ),
                migrations.AlterField(
                    model_name="predictionlog",
                    name="user",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="predictionlog",
                    name="version",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="predictions",
                        to="lifecycle.modelversion",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunPython(drop_old_indexes, restore_old_indexes),
            ],
        ),
        migrations.AddIndex(
            model_name="predictionlog",
            index=models.Index(fields=["model_name"], name="serving_log_model_name"),
        ),
        migrations.AddIndex(
            model_name="predictionlog",
            index=models.Index(fields=["request_id"], name="serving_log_request_id"),
        ),
        migrations.AddIndex(
            model_name="predictionlog",
            index=models.Index(
                condition=models.Q(("api_key__isnull", False)), fields=["api_key"], name="serving_log_api_key"
            ),
        ),
        migrations.AddIndex(
            model_name="predictionlog",
            index=models.Index(condition=models.Q(("user__isnull", False)), fields=["user"], name="serving_log_user"),
        ),
    ]
