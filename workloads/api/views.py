"""REST API v1: the registry. Every write goes through a service, which validates and audits."""

import django_filters
from django.conf import settings
from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.roles import Role, class_environment_id, environment_overrides, environment_role, user_role
from workloads.api import serializers as s
from workloads.api.actions import ActionSerializer
from workloads.api.choices import ChoiceField
from workloads.api.filters import IsoDateTimeFilter, environment_filter
from workloads.models import ApiToken, AuditEvent, CostRates, SchedulePolicy, Slo, WorkloadClass
from workloads.selectors import audit as audit_selectors
from workloads.selectors.environments import environment_by_slug
from workloads.selectors.users import user_time_display
from workloads.services import class_deletion
from workloads.services import classes as class_services
from workloads.services import provisioning as provisioning_services
from workloads.services import tokens as token_services
from workloads.services import users as user_services


class WorkloadClassFilter(django_filters.FilterSet):
    environment = environment_filter()

    class Meta:
        model = WorkloadClass
        fields = {"tier": ["exact"], "owner_team": ["exact"], "timeout_tier": ["exact"]}


class ClassDeleteParameters(serializers.Serializer):
    resources = ChoiceField(
        choices=class_deletion.RESOURCE_CHOICES,
        default=class_deletion.KEEP,
        help_text="keep (default): delete the class only, its topics, subscriptions and pool stay. delete: "
        "delete them too, as an action (202); refused (409) for resources another class names.",
    )
    force = serializers.BooleanField(
        default=False, help_text="With resources=delete: go ahead although undelivered dead letters would be lost."
    )


class ClassResourceSerializer(serializers.Serializer):
    kind = serializers.CharField()
    name = serializers.CharField()


class SharedResourceSerializer(serializers.Serializer):
    name = serializers.CharField()
    classes = serializers.ListField(child=serializers.CharField())


class DeletionPreviewSerializer(serializers.Serializer):
    slug = serializers.CharField()
    resources = ClassResourceSerializer(many=True, help_text="What resources=delete deletes, in order.")
    shared = SharedResourceSerializer(many=True, help_text="Resources other classes name too: never deleted.")
    dead_letters = serializers.IntegerField(help_text="Undelivered dead letters resources=delete would lose.")
    dead_letters_mirrored = serializers.IntegerField(help_text="... new or held here (neither replayed nor discarded)")
    dead_letters_waiting = serializers.IntegerField(help_text="... in the dead-letter subscription at the last poll")


class WorkloadClassViewSet(viewsets.ModelViewSet):
    """Workload classes with their SLOs and schedules (nested; a list given on write replaces the
    class's list, matched by SLO kind and schedule name). Slugs are stable identifiers."""

    serializer_class = s.WorkloadClassSerializer
    lookup_field = "slug"
    lookup_value_regex = "[a-z0-9-]+"
    read_role = Role.VIEWER
    write_role = Role.ADMIN
    environment_lookup = "environment"
    filterset_class = WorkloadClassFilter
    search_fields = ["slug", "name", "owner_team", "description"]
    ordering_fields = ["slug", "name", "owner_team", "tier", "created_at", "updated_at"]
    ordering = ["slug"]

    def permission_environment_id(self, request) -> int | None:
        """Whose role counts (workloads/api/permissions.py): a new class's requested environment (the
        default one when none is named), so an admin only in staging creates staging's classes; a
        class's own environment on its routes; the user's own role on the list. Without overrides
        that is their own role everywhere, and nothing is looked up."""
        if request.user.is_superuser or not environment_overrides(request.user):
            return None
        if self.action == "create":
            data = request.data if isinstance(request.data, dict) else {}
            slug = data.get("environment") or settings.DEFAULT_ENVIRONMENT
            environment = environment_by_slug(slug) if isinstance(slug, str) else None
            return environment.pk if environment is not None else None
        return class_environment_id(self.kwargs.get(self.lookup_field))

    def get_queryset(self):
        return WorkloadClass.objects.select_related("cost_rates", "environment").prefetch_related(
            Prefetch("slos", queryset=Slo.objects.order_by("kind")),
            Prefetch("schedules", queryset=SchedulePolicy.objects.order_by("-priority", "name")),
        )

    @staticmethod
    def _split(validated: dict) -> tuple[dict, list | None, list | None]:
        fields = dict(validated)
        slos = fields.pop("slos", None)
        schedules = fields.pop("schedules", None)
        return fields, slos, schedules

    def _fresh(self, workload_class: WorkloadClass) -> WorkloadClass:
        return self.get_queryset().get(pk=workload_class.pk)

    def perform_create(self, serializer):
        fields, slos, schedules = self._split(serializer.validated_data)
        created = class_services.workload_class_create(
            actor=self.request.user, fields=fields, slos=slos, schedules=schedules
        )
        serializer.instance = self._fresh(created)
        serializer.instance.provisioning_action = created.provisioning_action

    def perform_update(self, serializer):
        fields, slos, schedules = self._split(serializer.validated_data)
        moved_to = fields.get("environment")
        if moved_to is not None and moved_to.pk != serializer.instance.environment_id:
            # Moving a class into an environment is creating it there: the role there counts too.
            role = environment_role(self.request.user, moved_to.pk)
            if role < Role.ADMIN:
                raise PermissionDenied(f"This needs the admin role in {moved_to.slug}; you have {role.name.lower()}.")
        updated = class_services.workload_class_update(
            actor=self.request.user, workload_class=serializer.instance, fields=fields, slos=slos, schedules=schedules
        )
        serializer.instance = self._fresh(updated)
        serializer.instance.provisioning_action = updated.provisioning_action

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "resources",
                str,
                enum=list(class_deletion.RESOURCE_CHOICES),
                default="keep",
                description="`keep` (the default) leaves the class's cloud resources; `delete` deletes them too.",
            ),
            OpenApiParameter(
                "force", bool, default=False, description="With `delete`: go ahead although dead letters would be lost."
            ),
        ],
        responses={202: ActionSerializer, 204: None},
    )
    def destroy(self, request, *args, **kwargs):
        """Delete the class. `resources=keep` (the default: nothing in the cloud is ever deleted by
        omission) leaves its topics, subscriptions and pool, and answers 204; `resources=delete`
        deletes them too, as an action whose progress the 202 answer gives."""
        parameters = ClassDeleteParameters(data=request.query_params)
        parameters.is_valid(raise_exception=True)
        action = class_deletion.workload_class_delete(
            actor=request.user, workload_class=self.get_object(), **parameters.validated_data
        )
        if action is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(ActionSerializer(action).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: DeletionPreviewSerializer})
    @action(detail=True, methods=["get"], url_path="deletion")
    def deletion(self, request, slug=None):
        """What deleting the class with its resources would delete, what is shared with other classes
        (kept), and how many undelivered dead letters would be lost."""
        preview = class_deletion.workload_class_deletion_preview(self.get_object())
        return Response(DeletionPreviewSerializer(preview.as_dict()).data)

    @extend_schema(request=None, responses={202: ActionSerializer})
    @action(detail=True, methods=["post"])
    def provision(self, request, slug=None):
        """Provision the class's topics, subscriptions and pool again, or bring them in line with its
        settings (drift repair), as an action (admins)."""
        workload_class = self.get_object()
        started = provisioning_services.workload_class_provision_request(
            actor=request.user, workload_class=workload_class, reason="requested"
        )
        return Response(ActionSerializer(started).data, status=status.HTTP_202_ACCEPTED)


class CostRatesViewSet(viewsets.ModelViewSet):
    """Price sheets that classes point at (by name)."""

    serializer_class = s.CostRatesSerializer
    queryset = CostRates.objects.all()
    lookup_field = "name"
    read_role = Role.VIEWER
    write_role = Role.ADMIN
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at"]
    ordering = ["name"]

    def perform_create(self, serializer):
        serializer.instance = class_services.cost_rates_create(
            actor=self.request.user, fields=serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = class_services.cost_rates_update(
            actor=self.request.user, cost_rates=serializer.instance, fields=serializer.validated_data
        )

    def perform_destroy(self, instance):
        class_services.cost_rates_delete(actor=self.request.user, cost_rates=instance)


class AuditEventFilter(django_filters.FilterSet):
    occurred_after = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")
    actor = django_filters.CharFilter(field_name="actor_label", lookup_expr="icontains")
    action = django_filters.CharFilter(field_name="action", lookup_expr="startswith")
    workload_class = django_filters.CharFilter(field_name="workload_class_slug")

    class Meta:
        model = AuditEvent
        fields = ["result", "target_type", "target_id", "via", "request_id"]


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """The audit trail: every change, who made it, from where, and with what result."""

    serializer_class = s.AuditEventSerializer
    queryset = AuditEvent.objects.select_related("token")
    read_role = Role.VIEWER
    # Someone whose only roles are overrides reads the events of their environments' classes.
    environment_lookup = staticmethod(audit_selectors.events_in_environments)
    filterset_class = AuditEventFilter
    search_fields = ["target_repr", "action", "actor_label"]
    ordering_fields = ["occurred_at", "action"]
    ordering = ["-occurred_at", "-id"]


class ApiTokenViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """API tokens for automation, managed by admins. The token text is returned once, on create;
    DELETE revokes (the row stays for the audit trail)."""

    serializer_class = s.ApiTokenSerializer
    queryset = ApiToken.objects.select_related("user", "created_by")
    read_role = Role.ADMIN
    write_role = Role.ADMIN
    filterset_fields = ["user__username"]
    ordering_fields = ["created_at", "name"]
    ordering = ["-created_at"]

    @extend_schema(request=s.ApiTokenSerializer, responses={201: s.IssuedTokenSerializer})
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        token, raw = token_services.api_token_issue(
            actor=request.user,
            user=data.get("user", request.user),
            name=data["name"],
            scopes=data.get("scopes"),
            expires_at=data.get("expires_at"),
        )
        output = s.IssuedTokenSerializer(token).data
        output["token"] = raw
        return Response(output, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        token_services.api_token_revoke(actor=self.request.user, token=instance)


class MeView(APIView):
    """Who the API thinks you are: user, role and, for a token, its scopes; and how the screens
    show you times (PATCH `{"time_display": "utc" | "local"}` changes it, for you only)."""

    read_role = Role.VIEWER
    write_role = Role.VIEWER  # everyone who may look may choose their own clock

    def _me(self, request):
        token = request.auth if isinstance(request.auth, ApiToken) else None
        data = {
            "username": request.user.get_username(),
            "role": user_role(request.user).name.lower(),
            "token": token.name if token else None,
            "scopes": token.scopes if token else ["*"],
            "time_display": user_time_display(request.user),
        }
        return Response(s.MeSerializer(data).data)

    @extend_schema(responses=s.MeSerializer)
    def get(self, request):
        return self._me(request)

    @extend_schema(request=s.MePreferencesSerializer, responses=s.MeSerializer)
    def patch(self, request):
        serializer = s.MePreferencesSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user_services.user_time_display_set(
            actor=request.user, user=request.user, time_display=serializer.validated_data["time_display"]
        )
        return self._me(request)
