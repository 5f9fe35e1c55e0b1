from django.conf import settings
from django.db import models


class SsoProvider(models.TextChoices):
    OIDC = "oidc", "OpenID Connect"
    IAP = "iap", "Identity-Aware Proxy"


class UserIdentity(models.Model):
    """Where a person's role came from, and how they last signed in through single sign-on.

    One row per user (a small table: it grows with the organisation, not with traffic). Users
    without a row predate it: their role was set by hand."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="identity")
    # e.g. "set by ada-admin", "OIDC rule group:oncall=operator": shown on the users screen and API.
    role_source = models.CharField(max_length=255, blank=True)
    sso_provider = models.CharField(max_length=8, choices=SsoProvider.choices, blank=True)
    # The identity provider's stable id for the person (`sub`), kept for the audit trail.
    sso_subject = models.CharField(max_length=255, blank=True)
    last_sso_sign_in_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.user} ({self.role_source or 'role set by hand'})"
