"""REST API v1: environments. Everyone who may look reads them; admins create, change and delete
them (audited, through `workloads.services.environments`)."""

from django.db.models import Count
from rest_framework import serializers, viewsets

from controlplane.roles import Role
from workloads.api.serializers import StrictModelSerializer
from workloads.models import Environment
from workloads.services import environments as environment_services


class EnvironmentSerializer(StrictModelSerializer):
    projects = serializers.ListField(
        child=serializers.CharField(max_length=30),
        allow_empty=False,
        help_text="Google Cloud project ids its classes' topics, subscriptions and pools live in "
        "(the first one names a new class's resources).",
    )
    regions = serializers.ListField(
        child=serializers.CharField(max_length=40),
        allow_empty=False,
        help_text="Regions its classes' worker pools may run in (the first one for a new class).",
    )
    class_count = serializers.IntegerField(read_only=True, help_text="How many classes belong to it.")

    class Meta:
        model = Environment
        fields = [
            "id",
            "slug",
            "name",
            "description",
            "projects",
            "regions",
            "monitoring_project",
            "class_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]


class EnvironmentViewSet(viewsets.ModelViewSet):
    """Environments (prod, staging...): the projects and regions their classes live in and the
    Monitoring scoping project their metrics are read through. `?environment=<slug>` filters the
    classes, incidents, cost and dead-letter lists."""

    serializer_class = EnvironmentSerializer
    lookup_field = "slug"
    lookup_value_regex = "[a-z0-9-]+"
    class_slug_kwarg = None  # its `slug` names an environment, not a class
    read_role = Role.VIEWER
    write_role = Role.ADMIN
    search_fields = ["slug", "name", "description"]
    ordering_fields = ["slug", "name", "created_at"]
    ordering = ["slug"]

    def get_queryset(self):
        return Environment.objects.annotate(class_count=Count("workload_classes"))

    def _fresh(self, environment: Environment) -> Environment:
        return self.get_queryset().get(pk=environment.pk)

    def perform_create(self, serializer):
        created = environment_services.environment_create(actor=self.request.user, fields=serializer.validated_data)
        serializer.instance = self._fresh(created)

    def perform_update(self, serializer):
        updated = environment_services.environment_update(
            actor=self.request.user, environment=serializer.instance, fields=serializer.validated_data
        )
        serializer.instance = self._fresh(updated)

    def perform_destroy(self, instance):
        environment_services.environment_delete(actor=self.request.user, environment=instance)
