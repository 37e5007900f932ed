"""MlflowImport now belongs to lifecycle (lifecycle 0012 took its state; the table stays)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0001_initial"),
        ("lifecycle", "0012_mlflow_import_moves_here"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[migrations.DeleteModel(name="MlflowImport")],
        ),
    ]
