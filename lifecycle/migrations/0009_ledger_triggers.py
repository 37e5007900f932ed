"""The database refuses changes to governed registry state that no service makes (lifecycle.triggers)."""

from django.db import migrations

from core import triggers
from lifecycle.triggers import RULES


def forward(apps, schema_editor):
    triggers.install(RULES, schema_editor)


def backward(apps, schema_editor):
    triggers.uninstall(RULES, schema_editor)


class Migration(migrations.Migration):
    dependencies = [("lifecycle", "0008_version_manifest")]
    operations = [migrations.RunPython(forward, backward)]
