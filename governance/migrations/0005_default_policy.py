from django.db import migrations


def create_default_policy(apps, schema_editor):
    apps.get_model("governance", "Policy").objects.get_or_create(name="default")


class Migration(migrations.Migration):
    dependencies = [("governance", "0004_policy_checkrun_decision_deployment")]
    operations = [migrations.RunPython(create_default_policy, migrations.RunPython.noop)]
