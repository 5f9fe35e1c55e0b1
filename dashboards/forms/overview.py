"""The overview's filters and sort."""

from django import forms

from workloads.models import Tier
from workloads.selectors.fleet import FLEET_SORT_KEYS

SORT_CHOICES = [(key, key) for key in FLEET_SORT_KEYS] + [(f"-{key}", f"-{key}") for key in FLEET_SORT_KEYS]


class FleetFilterForm(forms.Form):
    """The overview's GET filters. Invalid values are dropped, never an error page: a stale
    bookmark with a team that no longer exists still shows the fleet."""

    q = forms.CharField(label="Search", required=False, max_length=100)
    team = forms.ChoiceField(label="Team", required=False)
    tier = forms.ChoiceField(
        label="Tier", required=False, choices=[("", "All tiers"), *((t.value, t.value.capitalize()) for t in Tier)]
    )
    sort = forms.ChoiceField(required=False, choices=SORT_CHOICES, widget=forms.HiddenInput)

    def __init__(self, *args, teams: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [("", "All teams"), *((team, team) for team in teams)]
        self.fields["q"].widget.attrs.update({"type": "search", "placeholder": "Name or slug"})

    def filters(self) -> dict[str, str]:
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return {
            "search": (data.get("q") or "").strip(),
            "team": data.get("team") or "",
            "tier": data.get("tier") or "",
            "sort": data.get("sort") or "status",
        }
