"""Environments. Existing classes move into the default environment, built from the settings they
ran under (GOOGLE_CLOUD_PROJECT, GOOGLE_CLOUD_REGION), so an upgrade loses nothing: the column is
added nullable, filled, then made required."""

import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

NAME_FIELDS = (
    "topic", "subscription", "dead_letter_topic", "dead_letter_subscription", "completion_topic", "worker_pool"
)


def existing_classes_to_default_environment(apps, schema_editor):
    # The database being migrated, not `default` (the tests migrate a SQLite database beside it).
    alias = schema_editor.connection.alias
    classes = apps.get_model("workloads", "WorkloadClass").objects.using(alias)
    if not classes.exists():
        return  # a fresh database: the default environment is created on first use
    # Every project and region the classes' resource names already use joins the environment, so
    # each class stays valid under the new rule that its names stay inside its environment.
    projects, regions = [settings.GOOGLE_CLOUD_PROJECT], [settings.GOOGLE_CLOUD_REGION]
    for names in classes.values_list(*NAME_FIELDS):
        for name in names:
            parts = (name or "").split("/")
            if len(parts) > 1 and parts[0] == "projects" and parts[1] not in projects:
                projects.append(parts[1])
            if len(parts) > 3 and parts[2] == "locations" and parts[3] not in regions:
                regions.append(parts[3])
    Environment = apps.get_model("workloads", "Environment")
    environment, _ = Environment.objects.using(alias).get_or_create(
        slug=settings.DEFAULT_ENVIRONMENT,
        defaults={
            "name": settings.DEFAULT_ENVIRONMENT.capitalize(),
            "projects": projects,
            "regions": regions,
            "monitoring_project": settings.GOOGLE_CLOUD_PROJECT,
        },
    )
    classes.filter(environment__isnull=True).update(environment=environment)


class Migration(migrations.Migration):

    dependencies = [
        ('workloads', '0026_pool_unhealthy_incidents'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Environment',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('slug', models.CharField(max_length=32, unique=True, validators=[django.core.validators.RegexValidator('^[a-z][a-z0-9-]{0,30}[a-z0-9]$', 'Use 2-32 lower-case letters, digits and hyphens, starting with a letter.', code='invalid_slug')])),
                ('name', models.CharField(max_length=80)),
                ('description', models.CharField(blank=True, max_length=255)),
                ('projects', models.JSONField(default=list, help_text="Google Cloud project ids its classes' topics, subscriptions and pools live in.")),
                ('regions', models.JSONField(default=list, help_text="Regions its classes' worker pools may run in.")),
                ('monitoring_project', models.CharField(help_text='The Cloud Monitoring scoping project whose metrics scope covers the projects: metrics are read through it, one call per metric type whatever the number of projects.', max_length=30)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['slug'],
            },
        ),
        migrations.AddField(
            model_name='workloadclass',
            name='environment',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name='workload_classes', to='workloads.environment'),
        ),
        migrations.RunPython(existing_classes_to_default_environment, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='workloadclass',
            name='environment',
            field=models.ForeignKey(blank=True, help_text='Blank: the default environment (DEFAULT_ENVIRONMENT).', on_delete=django.db.models.deletion.PROTECT, related_name='workload_classes', to='workloads.environment'),
        ),
        migrations.CreateModel(
            name='EnvironmentRole',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('role', models.CharField(choices=[('viewer', 'Viewer'), ('operator', 'Operator'), ('admin', 'Admin')], max_length=16)),
                ('source', models.CharField(blank=True, max_length=255)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('environment', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='roles', to='workloads.environment')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='environment_roles', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['environment__slug'],
                'constraints': [models.UniqueConstraint(fields=('user', 'environment'), name='one_role_per_user_environment')],
            },
        ),
    ]
