"""Forms of the alert screens: acknowledge, silence, channel and route. They parse input only; the
services check the rules (a matcher, a future expiry, a channel's URL) and raise ApplicationError."""

from django import forms

from workloads.models import AlertSeverity, ChannelKind, NotificationChannel, SloKind, Tier


def _choices(choices, any_label="any"):
    return [("", any_label), *choices]


class AcknowledgeForm(forms.Form):
    note = forms.CharField(
        required=False, max_length=2000, widget=forms.TextInput(attrs={"placeholder": "What you are doing about it"})
    )


class MatcherFields(forms.Form):
    owner_team = forms.CharField(required=False, max_length=80, label="Team")
    tier = forms.ChoiceField(required=False, choices=_choices(Tier.choices))
    workload_class_slug = forms.CharField(required=False, max_length=48, label="Class (slug)")
    slo_kind = forms.ChoiceField(required=False, choices=_choices(SloKind.choices), label="SLO")
    severity = forms.ChoiceField(required=False, choices=_choices(AlertSeverity.choices))


class SilenceForm(MatcherFields):
    reason = forms.CharField(required=False, max_length=2000, widget=forms.TextInput())
    expires_in_minutes = forms.IntegerField(
        min_value=5, max_value=30 * 24 * 60, initial=120, label="Expires in (minutes)"
    )


class ChannelForm(forms.Form):
    name = forms.CharField(max_length=80)
    kind = forms.ChoiceField(choices=ChannelKind.choices)
    url = forms.URLField(
        required=False,
        assume_scheme="https",
        label="Webhook URL",
        help_text="Webhook only: where the signed JSON goes.",
    )
    recipients = forms.CharField(required=False, label="E-mail recipients", help_text="E-mail only: comma-separated.")
    secret = forms.CharField(
        required=False,
        label="Secret",
        widget=forms.PasswordInput(render_value=False),
        help_text="Webhook: signing secret. Slack: the incoming-webhook URL. PagerDuty: the routing key. Write-only.",
    )

    def channel_config(self) -> dict:
        kind = self.cleaned_data["kind"]
        if kind == ChannelKind.WEBHOOK:
            return {"url": self.cleaned_data.get("url", "")}
        if kind == ChannelKind.EMAIL:
            return {"to": [r.strip() for r in self.cleaned_data.get("recipients", "").split(",") if r.strip()]}
        return {}


class RouteForm(MatcherFields):
    name = forms.CharField(max_length=80)
    order = forms.IntegerField(min_value=0, max_value=10000, initial=100)
    is_default = forms.BooleanField(required=False, label="Default route (used when no other matches)")
    channels = forms.ModelMultipleChoiceField(queryset=NotificationChannel.objects.all(), required=False)
    hold_tickets_for_business_hours = forms.BooleanField(required=False, label="Hold tickets until business hours")
    business_hours_timezone = forms.CharField(max_length=64, initial="UTC", label="Business-hours time zone")
