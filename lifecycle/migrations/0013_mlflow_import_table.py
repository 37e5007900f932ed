from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("lifecycle", "0012_mlflow_import_moves_here"),
        ("integrations", "0002_mlflow_import_moves_to_lifecycle"),
    ]

    operations = [
        migrations.AlterModelTable(name="mlflowimport", table=None),
    ]
