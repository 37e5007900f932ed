"""Seal trees: what an inclusion proof needs, stored with each seal (seals written before keep
proving by recomputing their leaves). On PostgreSQL the levels are stored out of line and
uncompressed (STORAGE EXTERNAL; SHA-256 hashes do not compress anyway), so substring() reads only
the TOAST chunks that hold a proof's path, not the whole tree."""

import django.db.models.deletion
from django.db import migrations, models


def external_storage(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE serving_sealtree ALTER COLUMN levels SET STORAGE EXTERNAL")


class Migration(migrations.Migration):
    dependencies = [
        ("serving", "0009_predictionoutcome_sensitive"),
    ]

    operations = [
        migrations.CreateModel(
            name="SealTree",
            fields=[
                (
                    "seal",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        primary_key=True,
                        related_name="tree",
                        serialize=False,
                        to="serving.predictionseal",
                    ),
                ),
                ("levels", models.BinaryField()),
                ("record_runs", models.BinaryField()),
            ],
        ),
        migrations.RunPython(external_storage, migrations.RunPython.noop),
    ]
