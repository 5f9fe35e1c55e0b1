"""REST API v1: people. Admins list, create (invite: no password, the person signs in through single
sign-on by e-mail address) and change users: role, active or not, tokens revoked. Every change
goes through `workloads.services.users` and is audited."""

import django_filters
from django.contrib.auth import get_user_model
from django.db.models import Count, Q
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from controlplane.roles import ASSIGNABLE_ROLES, Role
from workloads.api.choices import ChoiceField
from workloads.api.serializers import ApiTokenSerializer
from workloads.models import ApiToken, Environment
from workloads.models.environments import ENVIRONMENT_SLUG_VALIDATOR
from workloads.selectors.users import user_environment_roles, user_list_queryset, user_role_name
from workloads.services import users as user_services

ROLE_CHOICES = [role.group_name for role in ASSIGNABLE_ROLES]


class EnvironmentRoleSerializer(serializers.Serializer):
    environment = serializers.CharField(source="environment.slug")
    role = ChoiceField(choices=ROLE_CHOICES)
    source = serializers.CharField(help_text="Who set it, or the single sign-on rule that gave it.")


class UserSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)
    email = serializers.CharField(read_only=True, help_text="The address, or empty when none is known.")
    role = serializers.SerializerMethodField(help_text="viewer, operator, admin, or none")
    role_source = serializers.SerializerMethodField(
        help_text="Where the role came from: who set it, or the single sign-on rule that gave it."
    )
    environment_roles = serializers.SerializerMethodField(
        help_text="Roles in single environments, instead of `role`, for everything about their classes."
    )
    is_active = serializers.BooleanField(read_only=True)
    sso_provider = serializers.SerializerMethodField(help_text="oidc or iap once signed in that way, else empty")
    last_sso_sign_in_at = serializers.SerializerMethodField()
    last_login = serializers.DateTimeField(read_only=True, allow_null=True)
    date_joined = serializers.DateTimeField(read_only=True)
    active_tokens = serializers.IntegerField(read_only=True)

    def get_role(self, user) -> str:
        return user_role_name(user)

    @extend_schema_field(EnvironmentRoleSerializer(many=True))
    def get_environment_roles(self, user) -> list:
        return EnvironmentRoleSerializer(user_environment_roles(user), many=True).data

    def _identity(self, user):
        return getattr(user, "identity", None) if hasattr(user, "identity") else None

    def get_role_source(self, user) -> str:
        identity = self._identity(user)
        return identity.role_source if identity else ""

    def get_sso_provider(self, user) -> str:
        identity = self._identity(user)
        return identity.sso_provider if identity else ""

    def get_last_sso_sign_in_at(self, user) -> str | None:
        identity = self._identity(user)
        value = identity.last_sso_sign_in_at if identity else None
        return serializers.DateTimeField().to_representation(value) if value else None


class UserCreateSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    role = ChoiceField(choices=ROLE_CHOICES)
    password = serializers.CharField(
        required=False,
        allow_blank=True,
        write_only=True,
        style={"input_type": "password"},
        help_text="Optional. Without it the person signs in through single sign-on (by e-mail) or uses API tokens.",
    )


class UserUpdateSerializer(serializers.Serializer):
    role = ChoiceField(choices=ROLE_CHOICES, required=False)
    is_active = serializers.BooleanField(
        required=False, help_text="false deactivates: sessions and tokens stop working"
    )
    environment_roles = serializers.DictField(
        child=ChoiceField(choices=ROLE_CHOICES, allow_null=True),
        required=False,
        help_text="By environment slug: the role there, or null for their own role there again, e.g. "
        '{"staging": "operator", "prod": null}.',
    )

    def validate_environment_roles(self, value: dict) -> dict:
        # Only what could be a slug reaches the query (a NUL byte would reach the database otherwise).
        slugs = [slug for slug in value if ENVIRONMENT_SLUG_VALIDATOR.regex.fullmatch(slug)]
        known = dict(Environment.objects.filter(slug__in=slugs).values_list("slug", "pk"))
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise serializers.ValidationError(f"Unknown environment(s): {', '.join(unknown)}.")
        return value


class RevokedTokensSerializer(serializers.Serializer):
    revoked = serializers.IntegerField()


class UserFilter(django_filters.FilterSet):
    role = django_filters.ChoiceFilter(
        choices=[(name, name) for name in ROLE_CHOICES], method="filter_role", label="role"
    )

    class Meta:
        model = get_user_model()
        fields = ["is_active"]

    def filter_role(self, queryset, name, value):
        role = Role.from_name(value)
        if role is Role.ADMIN:
            return queryset.filter(Q(is_superuser=True) | Q(groups__name=value)).distinct()
        return queryset.filter(groups__name=value, is_superuser=False)


class UserViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Users (admins only). POST creates or invites, PATCH changes `role` and `is_active`; the last
    active admin cannot be demoted or deactivated, nor can you deactivate yourself."""

    serializer_class = UserSerializer
    read_role = Role.ADMIN
    write_role = Role.ADMIN
    lookup_field = "username"
    lookup_value_regex = r"[\w.@+-]+"  # Django usernames; no NUL or other bytes the database refuses
    filterset_class = UserFilter
    search_fields = ["username", "email"]
    ordering_fields = ["username", "date_joined", "last_login"]
    ordering = ["username"]

    def get_queryset(self):
        return user_list_queryset().annotate(
            active_tokens=Count("api_tokens", filter=Q(api_tokens__revoked_at__isnull=True), distinct=True)
        )

    def _fresh(self, user):
        return self.get_queryset().get(pk=user.pk)

    @extend_schema(request=UserCreateSerializer, responses={201: UserSerializer})
    def create(self, request):
        data = UserCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_services.user_create(
            actor=request.user,
            username=data.validated_data["username"],
            email=data.validated_data["email"],
            role=Role.from_name(data.validated_data["role"]),
            password=data.validated_data.get("password") or None,
        )
        return Response(UserSerializer(self._fresh(user)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=UserUpdateSerializer, responses=UserSerializer)
    def partial_update(self, request, username=None):
        user = self.get_object()
        data = UserUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if not data.validated_data:
            raise serializers.ValidationError({"non_field_errors": ["Send role, is_active and/or environment_roles."]})
        user_services.user_update(
            actor=request.user,
            user=user,
            role=Role.from_name(data.validated_data["role"]) if "role" in data.validated_data else None,
            is_active=data.validated_data.get("is_active"),
            environment_roles={
                slug: Role.from_name(name) if name else None
                for slug, name in data.validated_data.get("environment_roles", {}).items()
            },
        )
        return Response(UserSerializer(self._fresh(user)).data)

    @extend_schema(responses=ApiTokenSerializer(many=True))
    @action(detail=True, methods=["get"])
    def tokens(self, request, username=None):
        """The user's tokens, newest first (revoke one with DELETE /api/v1/tokens/<id>/)."""
        user = self.get_object()
        tokens = ApiToken.objects.filter(user=user).select_related("user", "created_by").order_by("-created_at")
        page = self.paginate_queryset(tokens)
        return self.get_paginated_response(ApiTokenSerializer(page, many=True).data)

    @extend_schema(request=None, responses=RevokedTokensSerializer)
    @action(detail=True, methods=["post"], url_path="revoke-tokens")
    def revoke_tokens(self, request, username=None):
        """Revoke every active token of the user."""
        user = self.get_object()
        revoked = user_services.user_tokens_revoke(actor=request.user, user=user)
        return Response({"revoked": revoked})
