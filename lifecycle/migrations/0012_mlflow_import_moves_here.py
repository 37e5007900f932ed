"""The MLflow lineage (MlflowImport) moves from integrations to lifecycle: provenance belongs to
the registry, so the reports below integrations read it without a lookup by name. The state moves
here with the table as it is; 0013 then gives the table lifecycle's name (its rows, grants and
constraints follow it)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("lifecycle", "0011_mrm_inventory"),
        ("integrations", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="MlflowImport",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("run_id", models.CharField(blank=True, max_length=64)),
                        ("model_uuid", models.CharField(blank=True, max_length=64)),
                        ("mlflow_version", models.CharField(blank=True, max_length=40)),
                        ("sklearn_version", models.CharField(blank=True, max_length=40)),
                        ("serialization_format", models.CharField(max_length=20)),
                        (
                            "signature",
                            models.JSONField(
                                default=dict, help_text="{'inputs': [...], 'outputs': [...]} from MLmodel"
                            ),
                        ),
                        ("pip_requirements", models.JSONField(default=list)),
                        ("mlmodel_sha256", models.CharField(max_length=64)),
                        ("source_path", models.CharField(blank=True, max_length=500)),
                        ("utc_time_created", models.CharField(blank=True, max_length=40)),
                        ("imported_by_username", models.CharField(max_length=150)),
                        ("imported_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "version",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="mlflow_import",
                                to="lifecycle.modelversion",
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "MLflow import",
                        "db_table": "integrations_mlflowimport",
                    },
                ),
            ],
        ),
    ]
