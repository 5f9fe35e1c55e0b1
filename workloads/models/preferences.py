from django.conf import settings
from django.db import models


class TimeDisplay(models.TextChoices):
    """Which clock the screens show times in. Either way each time carries its zone's name."""

    UTC = "utc", "UTC"
    LOCAL = "local", "The browser's time zone"


class UserPreference(models.Model):
    """How one person wants the screens to show things, kept with them (not with one browser).
    A user who never chose has no row and gets the defaults."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference")
    time_display = models.CharField(max_length=8, choices=TimeDisplay.choices, default=TimeDisplay.UTC)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"preferences of {self.user}"
