"""The Django admin, for admins only, with every change audited like an API change.

Validation is the models' own (`full_clean` from the admin forms), so the admin accepts and
refuses exactly what the API does.
"""

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Group
from django.db import models
from django.template.response import TemplateResponse
from django.utils import timezone

from controlplane.roles import Role, has_role
from workloads.models import ApiToken, AuditEvent, CostRates, Environment, SchedulePolicy, Slo, WorkloadClass
from workloads.services.audit import audit_event_record, diff, snapshot
from workloads.services.classes import workload_class_snapshot
from workloads.services.provisioning import cloud_specs, workload_class_provision_if_changed
from workloads.services.tokens import api_token_issue, api_token_revoke, validate_scopes


class RoleGatedAdminMixin:
    """Admin-role users may do everything here; nobody else sees the admin. Django's per-model
    permission rows are not used: roles are the one permission system."""

    # A link typed without its scheme becomes https://... (Django 6's default; Django 5 warns).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def has_module_permission(self, request):
        return has_role(request.user, Role.ADMIN)

    def has_view_permission(self, request, obj=None):
        return has_role(request.user, Role.ADMIN)

    def has_add_permission(self, request, *args):
        return has_role(request.user, Role.ADMIN)

    def has_change_permission(self, request, obj=None):
        return has_role(request.user, Role.ADMIN)

    def has_delete_permission(self, request, obj=None):
        return has_role(request.user, Role.ADMIN)


class AuditedModelAdmin(RoleGatedAdminMixin, admin.ModelAdmin):
    """Writes an AuditEvent for add, change and delete, with the before/after diff, inside the
    admin's own transaction. Subclasses set `audit_name` (e.g. "workload_class")."""

    audit_name = ""

    def audit_snapshot(self, obj) -> dict:
        return snapshot(obj)

    def audit_class_slug(self, obj) -> str:
        return ""

    def save_model(self, request, obj, form, change):
        if change and obj.pk:
            stored = type(obj).objects.get(pk=obj.pk)
            request._audit_before = self.audit_snapshot(stored)
        super().save_model(request, obj, form, change)

    def _record(self, request, obj, verb: str, before: dict, after: dict) -> None:
        changes = diff(before, after)
        if verb == "update" and not changes:
            return
        audit_event_record(
            actor=request.user,
            action=f"{self.audit_name}.{verb}",
            target=obj,
            changes=changes,
            workload_class_slug=self.audit_class_slug(obj),
        )

    def log_addition(self, request, obj, message):
        # Called after the object and its inlines are saved, inside the admin's transaction.
        self._record(request, obj, "create", {}, self.audit_snapshot(obj))
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        before = getattr(request, "_audit_before", {})
        self._record(request, obj, "update", before, self.audit_snapshot(obj))
        return super().log_change(request, obj, message)

    def delete_model(self, request, obj):
        self._record(request, obj, "delete", self.audit_snapshot(obj), {})
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self._record(request, obj, "delete", self.audit_snapshot(obj), {})
        super().delete_queryset(request, queryset)


class SloInline(RoleGatedAdminMixin, admin.TabularInline):
    model = Slo
    extra = 0


class SchedulePolicyInline(RoleGatedAdminMixin, admin.TabularInline):
    model = SchedulePolicy
    extra = 0


# Said where the retention is chosen, because it is what the class pays for (docs/gcp.md).
RETAINED_ACKS_COST = (
    "The work subscription keeps acknowledged messages too (retain_acked_messages, so a seek can "
    "replay processed work): Pub/Sub bills that as subscription message-backlog storage for the "
    "whole retention, for every message published, processed or not. A shorter retention costs less "
    "but narrows how far back a seek can replay. Dead letters are always kept 7 days."
)


@admin.register(Environment)
class EnvironmentAdmin(AuditedModelAdmin):
    audit_name = "environment"
    list_display = ["slug", "name", "projects", "regions", "monitoring_project"]
    search_fields = ["slug", "name"]


@admin.register(WorkloadClass)
class WorkloadClassAdmin(AuditedModelAdmin):
    audit_name = "workload_class"
    list_display = ["slug", "name", "owner_team", "tier", "runtime", "timeout_tier", "min_instances", "max_instances"]
    list_filter = ["environment", "tier", "runtime", "timeout_tier", "owner_team"]
    search_fields = ["slug", "name", "owner_team"]
    inlines = [SloInline, SchedulePolicyInline]
    save_on_top = True

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "message_retention_seconds" and field is not None:
            field.help_text = f"{db_field.help_text} {RETAINED_ACKS_COST}"
        return field

    def get_readonly_fields(self, request, obj=None):
        # The slug names cloud resources; it is fixed once the class exists.
        return ["slug", "created_at", "updated_at"] if obj else ["created_at", "updated_at"]

    def audit_snapshot(self, obj):
        return workload_class_snapshot(obj)

    def audit_class_slug(self, obj):
        return obj.slug

    # Provisioning follows the class's lifecycle here too, as in the API: a new class, or a change of
    # what lives in the cloud, starts an ensure_resources action (messages link to it).
    def save_model(self, request, obj, form, change):
        request._cloud_before = cloud_specs(type(obj).objects.get(pk=obj.pk)) if change and obj.pk else None
        super().save_model(request, obj, form, change)

    def log_addition(self, request, obj, message):
        entry = super().log_addition(request, obj, message)
        self._provision(request, obj, before=None)
        return entry

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)
        self._provision(request, obj, before=getattr(request, "_cloud_before", None) or cloud_specs(obj))
        return entry

    def _provision(self, request, obj, *, before):
        action = workload_class_provision_if_changed(actor=request.user, workload_class=obj, before=before)
        if action is not None:
            self.message_user(request, f"Provisioning its cloud resources: action {action.pk} (/actions/{action.pk}/).")


@admin.register(CostRates)
class CostRatesAdmin(AuditedModelAdmin):
    audit_name = "cost_rates"
    list_display = ["name", "currency", "vcpu_second", "gib_second", "per_record", "per_1k_tokens"]
    search_fields = ["name"]


@admin.register(AuditEvent)
class AuditEventAdmin(RoleGatedAdminMixin, admin.ModelAdmin):
    list_display = ["occurred_at", "actor_label", "via", "action", "target_repr", "result", "source_ip"]
    list_filter = ["result", "via", "action", "target_type"]
    search_fields = ["actor_label", "action", "target_repr", "request_id", "workload_class_slug"]
    date_hierarchy = "occurred_at"

    # The trail is append-only, even for admins.
    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ApiTokenAddForm(forms.ModelForm):
    scopes_text = forms.CharField(
        label="Scopes",
        initial="*",
        required=False,
        help_text="Comma-separated: '*' (all the user may do), 'read', 'ingest:*' or 'ingest:<class-slug>'.",
    )

    class Meta:
        model = ApiToken
        fields = ["name", "user", "expires_at"]

    def clean_scopes_text(self):
        raw = [part.strip() for part in self.cleaned_data["scopes_text"].split(",") if part.strip()]
        from django.core.exceptions import ValidationError

        try:
            return validate_scopes(raw)
        except ValidationError as exc:
            raise forms.ValidationError(exc.message_dict["scopes"]) from None


@admin.register(ApiToken)
class ApiTokenAdmin(RoleGatedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "user", "key_id", "scopes", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username", "key_id"]
    actions = ["revoke_selected"]
    readonly_fields = [
        "name",
        "user",
        "key_id",
        "scopes",
        "created_by",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiTokenAddForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else []

    def get_fields(self, request, obj=None):
        return ["name", "user", "scopes_text", "expires_at"] if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None):
        return False  # tokens are issued or revoked, never edited

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead, so the audit trail keeps the row

    def save_model(self, request, obj, form, change):
        token, raw = api_token_issue(
            actor=request.user,
            user=form.cleaned_data["user"],
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes_text"],
            expires_at=form.cleaned_data.get("expires_at"),
        )
        obj.pk = token.pk
        obj.__dict__.update(ApiToken.objects.get(pk=token.pk).__dict__)
        obj.issued_token_text = raw  # for response_add; never stored

    def response_add(self, request, obj, post_url_continue=None):
        # The token is shown once on this page, not through the messages framework: its default
        # storage is a signed (readable, not encrypted) cookie, which would carry the token to the
        # browser and back, and into whatever logs cookies.
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Token issued",
            "token": obj,
            "token_text": obj.issued_token_text,
        }
        return TemplateResponse(request, "admin/workloads/apitoken/issued.html", context)

    @admin.action(description="Revoke selected tokens")
    def revoke_selected(self, request, queryset):
        for token in queryset.filter(revoked_at__isnull=True):
            api_token_revoke(actor=request.user, token=token)
        self.message_user(request, f"Revoked at {timezone.now():%H:%M:%S}.")


User = get_user_model()
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class AuditedUserAdmin(RoleGatedAdminMixin, UserAdmin):
    """Users and their role (the role is the user's group: viewer, operator or admin)."""

    audit_name = "user"
    list_display = ["username", "email", "is_active", "is_staff", "role_names", "last_login"]

    @admin.display(description="Role")
    def role_names(self, obj):
        return ", ".join(obj.groups.values_list("name", flat=True)) or "none"

    def _user_snapshot(self, obj) -> dict:
        data = snapshot(obj, exclude={"password", "last_login"})
        data["groups"] = sorted(obj.groups.values_list("name", flat=True)) if obj.pk else []
        return data

    def save_model(self, request, obj, form, change):
        if change and obj.pk:
            stored = User.objects.get(pk=obj.pk)
            request._audit_before = self._user_snapshot(stored)
            request._audit_password_changed = stored.password != obj.password
        super().save_model(request, obj, form, change)

    def user_change_password(self, request, id, form_url=""):
        if request.method == "POST":
            stored = User.objects.filter(pk=id).first()
            if stored is not None:
                request._audit_before = self._user_snapshot(stored)
                request._audit_password_changed = True
        return super().user_change_password(request, id, form_url)

    def _record(self, request, obj, verb, before, after):
        changes = diff(before, after)
        if getattr(request, "_audit_password_changed", False):
            changes["password"] = ["(hidden)", "(changed)"]
        if verb == "update" and not changes:
            return
        audit_event_record(actor=request.user, action=f"user.{verb}", target=obj, changes=changes)

    def log_addition(self, request, obj, message):
        self._record(request, obj, "create", {}, self._user_snapshot(obj))
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        self._record(request, obj, "update", getattr(request, "_audit_before", {}), self._user_snapshot(obj))
        return super().log_change(request, obj, message)

    def delete_model(self, request, obj):
        self._record(request, obj, "delete", self._user_snapshot(obj), {})
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self._record(request, obj, "delete", self._user_snapshot(obj), {})
        super().delete_queryset(request, queryset)
