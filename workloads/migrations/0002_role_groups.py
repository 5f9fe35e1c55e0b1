from django.db import migrations

ROLE_GROUPS = ("viewer", "operator", "admin")


def create_role_groups(apps, schema_editor):
    # On the database being migrated (the tests migrate a second, SQLite alias too).
    groups = apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias)
    for name in ROLE_GROUPS:
        groups.get_or_create(name=name)


def remove_role_groups(apps, schema_editor):
    groups = apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias)
    groups.filter(name__in=ROLE_GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("workloads", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_role_groups, remove_role_groups)]
