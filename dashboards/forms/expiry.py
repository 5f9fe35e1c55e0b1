"""How long a pause or incident mode lasts: the choices (within the subscription's retention), the
field, and the extend form both use."""

from django import forms

EXPIRY_CHOICES = [
    (30, "30 minutes"),
    (60, "1 hour"),
    (120, "2 hours"),
    (240, "4 hours"),
    (480, "8 hours"),
    (720, "12 hours"),
    (1440, "1 day"),
    (4320, "3 days"),
    (10080, "7 days"),
]


def expiry_choices(*, retention_seconds: int | None = None, default_minutes: int | None = None):
    """The expiry options; with a class's retention, the ones longer than it say so (the pause
    would outlast what the subscription keeps)."""
    choices = list(EXPIRY_CHOICES)
    if default_minutes and default_minutes not in dict(choices):
        choices.append((default_minutes, f"{default_minutes} minutes"))
        choices.sort()
    if retention_seconds is None:
        return choices
    return [
        (minutes, f"{label} (longer than the retention)" if minutes * 60 > retention_seconds else label)
        for minutes, label in choices
    ]


class ExpiryField(forms.TypedChoiceField):
    def __init__(self, **kwargs):
        kwargs.setdefault("label", "Ends by itself after")
        super().__init__(coerce=int, choices=EXPIRY_CHOICES, **kwargs)


class ExtendForm(forms.Form):
    expires_in_minutes = ExpiryField(label="Ends after (from now)")

    def __init__(self, *args, default_minutes: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["expires_in_minutes"].choices = expiry_choices(default_minutes=default_minutes)
        self.fields["expires_in_minutes"].initial = default_minutes
