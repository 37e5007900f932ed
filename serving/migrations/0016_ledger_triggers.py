"""The database refuses changes to governed serving state that no service makes (serving.triggers)."""

from django.db import migrations

from core import triggers
from serving.triggers import RULES


def forward(apps, schema_editor):
    triggers.install(RULES, schema_editor)


def backward(apps, schema_editor):
    triggers.uninstall(RULES, schema_editor)


class Migration(migrations.Migration):
    dependencies = [("serving", "0015_subject_key_one_index")]
    operations = [migrations.RunPython(forward, backward)]
