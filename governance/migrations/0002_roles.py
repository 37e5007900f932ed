from django.db import migrations

ROLES = ("data-scientists", "risk-officers", "auditors")


def create_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ROLES:
        Group.objects.get_or_create(name=name)


class Migration(migrations.Migration):
    dependencies = [("auth", "0012_alter_user_first_name_max_length"), ("governance", "0001_initial")]
    operations = [migrations.RunPython(create_groups, migrations.RunPython.noop)]
