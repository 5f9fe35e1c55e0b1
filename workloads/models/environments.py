"""Environments (prod, staging...): which Google Cloud projects and regions a class may live in,
and the Cloud Monitoring scoping project its metrics are read through. Every class belongs to one.

A person's role can be overridden per environment (EnvironmentRole): operator in staging and
viewer in prod. Without an override the user's own role applies (controlplane/roles.py).
"""

import re

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from workloads import validation

ENVIRONMENT_LIST_CACHE_KEY = "environments:choices"
ENVIRONMENT_SLUG_VALIDATOR = RegexValidator(
    r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$",
    "Use 2-32 lower-case letters, digits and hyphens, starting with a letter.",
    code="invalid_slug",
)


def _list_of_strings(value, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError(f"Give the {what} as a list of strings.", code="invalid")
    return value


class Environment(models.Model):
    slug = models.CharField(max_length=32, unique=True, validators=[ENVIRONMENT_SLUG_VALIDATOR])
    name = models.CharField(max_length=80)
    description = models.CharField(max_length=255, blank=True)
    projects = models.JSONField(
        default=list, help_text="Google Cloud project ids its classes' topics, subscriptions and pools live in."
    )
    regions = models.JSONField(default=list, help_text="Regions its classes' worker pools may run in.")
    monitoring_project = models.CharField(
        max_length=30,
        help_text="The Cloud Monitoring scoping project whose metrics scope covers the projects: "
        "metrics are read through it, one call per metric type whatever the number of projects.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        cache.delete(ENVIRONMENT_LIST_CACHE_KEY)  # the screens' switcher lists it

    def delete(self, *args, **kwargs):
        result = super().delete(*args, **kwargs)
        cache.delete(ENVIRONMENT_LIST_CACHE_KEY)
        return result

    def clean(self) -> None:
        errors: dict[str, list] = {}
        for field, what, check in (
            ("projects", "project ids", validation.validate_project_id),
            ("regions", "regions", validate_region),
        ):
            try:
                items = _list_of_strings(getattr(self, field), what)
            except ValidationError as exc:
                errors[field] = exc.messages
                continue
            if not items:
                errors[field] = [f"Name at least one of its {what}."]
            elif len(set(items)) != len(items):
                errors[field] = [f"The {what} repeat an entry."]
            for item in items:
                try:
                    check(item)
                except ValidationError as exc:
                    errors.setdefault(field, []).append(f"{item!r}: {exc.messages[0]}")
        try:
            validation.validate_project_id(self.monitoring_project)
        except ValidationError as exc:
            errors["monitoring_project"] = exc.messages
        if errors:
            raise ValidationError(errors)


def validate_region(value: str) -> None:
    if not re.fullmatch(validation.LOCATION, value or ""):
        raise ValidationError("Enter a region like us-central1 or europe-west4.", code="invalid_region")


def default_environment_pk(using: str = "default") -> int:
    """The environment a class lands in when none is named: DEFAULT_ENVIRONMENT, created from the
    deployment's own project and region the first time (what every class ran in before environments)."""
    # `using`: a class saved to another database (the contract tests' SQLite) finds its default there.
    environment, _ = Environment.objects.using(using).get_or_create(
        slug=settings.DEFAULT_ENVIRONMENT,
        defaults={
            "name": settings.DEFAULT_ENVIRONMENT.capitalize(),
            "projects": [settings.GOOGLE_CLOUD_PROJECT],
            "regions": [settings.GOOGLE_CLOUD_REGION],
            "monitoring_project": settings.GOOGLE_CLOUD_PROJECT,
        },
    )
    return environment.pk


class EnvironmentRole(models.Model):
    """A user's role in one environment, instead of their own role, for everything scoped to a
    class of that environment (and to incident mode scoped to it)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="environment_roles")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="roles")
    role = models.CharField(max_length=16, choices=[(n, n.capitalize()) for n in ("viewer", "operator", "admin")])
    # e.g. "set by ada-admin", "OIDC rule group:oncall@staging=operator": shown on the users screen and API.
    source = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["environment__slug"]
        constraints = [models.UniqueConstraint(fields=["user", "environment"], name="one_role_per_user_environment")]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} in {self.environment}"
