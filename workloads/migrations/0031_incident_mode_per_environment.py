# Incident mode may be scoped to one environment: at most one active for every environment, and one per environment.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('workloads', '0030_local_models_move_to_localcloud'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='incidentmode',
            name='one_active_incident_mode',
        ),
        migrations.AddField(
            model_name='incidentmode',
            name='environment',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='incidents', to='workloads.environment'),
        ),
        migrations.AddConstraint(
            model_name='incidentmode',
            constraint=models.UniqueConstraint(condition=models.Q(('ended_at__isnull', True), ('environment__isnull', True)), fields=('end_reason',), name='one_active_incident_mode'),
        ),
        migrations.AddConstraint(
            model_name='incidentmode',
            constraint=models.UniqueConstraint(condition=models.Q(('ended_at__isnull', True)), fields=('environment',), name='one_active_incident_mode_per_environment'),
        ),
    ]
