"""The database refuses a version's status change that the lifecycle table does not allow, and a
version registered in any status but draft (governance.triggers, generated from
governance.rules.TRANSITIONS: when that table changes, a new migration installs these again)."""

from django.db import migrations

from core import triggers
from governance.triggers import RULES


def forward(apps, schema_editor):
    triggers.install(RULES, schema_editor)


def backward(apps, schema_editor):
    triggers.uninstall(RULES, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0022_mrm_kpis_retraining"),
        ("lifecycle", "0011_mrm_inventory"),
    ]
    operations = [migrations.RunPython(forward, backward)]
