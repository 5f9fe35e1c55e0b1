from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from django import forms
from django.core.exceptions import ValidationError

from workloads.models import ActionKind, ActionState, Tier
from workloads.selectors.fleet import FLEET_SORT_KEYS
from workloads.validation import validate_timezone

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


# --- Cost ------------------------------------------------------------------------------------------
COST_PRESETS = {"today": "Today", "7d": "Last 7 days", "30d": "Last 30 days", "custom": "Custom"}
MAX_COST_DAYS = 400  # what GET /api/v1/cost accepts


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime
    label: str


class CostForm(forms.Form):
    """The cost screen's period and grouping. Custom dates are whole UTC days, both included."""

    period = forms.ChoiceField(choices=list(COST_PRESETS.items()), required=False, widget=forms.RadioSelect)
    start = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To (included)", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    group_by = forms.ChoiceField(
        label="Group by", choices=[("class", "Class"), ("team", "Team")], required=False, widget=forms.RadioSelect
    )

    def clean(self):
        data = super().clean()
        if data.get("period") == "custom":
            start, end = data.get("start"), data.get("end")
            if not start or not end:
                raise ValidationError("A custom period needs both a start and an end date.")
            if start > end:
                raise ValidationError("The start date must not be after the end date.")
            if (end - start).days + 1 > MAX_COST_DAYS:
                raise ValidationError(f"A period may span at most {MAX_COST_DAYS} days.")
        return data

    def grouping(self) -> str:
        return (self.cleaned_data.get("group_by") if self.is_valid() else "") or "class"

    def period_range(self, now: datetime) -> Period:
        """The chosen period; today (since midnight UTC) when the form is empty or invalid."""
        preset = (self.cleaned_data.get("period") if self.is_valid() else "") or "today"
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        if preset == "7d":
            return Period(now - timedelta(days=7), now, COST_PRESETS["7d"])
        if preset == "30d":
            return Period(now - timedelta(days=30), now, COST_PRESETS["30d"])
        if preset == "custom":
            start = datetime.combine(self.cleaned_data["start"], time.min, tzinfo=UTC)
            end = min(datetime.combine(self.cleaned_data["end"], time.min, tzinfo=UTC) + timedelta(days=1), now)
            if end <= start:  # a custom period entirely in the future has nothing to report yet
                end = start + timedelta(seconds=1)
            label = f"{self.cleaned_data['start']:%d %b %Y} – {self.cleaned_data['end']:%d %b %Y}"
            return Period(start, end, label)
        return Period(midnight, now, COST_PRESETS["today"])


# --- Audit log -------------------------------------------------------------------------------------
class AuditFilterForm(forms.Form):
    """Filters of the audit log. Times are UTC; invalid values are reported next to the field."""

    actor = forms.CharField(label="Actor", required=False, max_length=150)
    action = forms.CharField(label="Action", required=False, max_length=64, help_text="Exact, or a prefix.")
    workload_class = forms.CharField(label="Class", required=False, max_length=48)
    start = forms.DateTimeField(
        label="From (UTC)",
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    end = forms.DateTimeField(
        label="To (UTC)",
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["actor"].widget.attrs.update({"type": "search", "placeholder": "e.g. ada"})
        self.fields["action"].widget.attrs.update({"list": "audit-actions", "placeholder": "e.g. action.scale"})
        self.fields["workload_class"].widget.attrs.update({"list": "audit-classes", "placeholder": "slug"})

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["start"] >= data["end"]:
            self.add_error("end", "“To” must be after “From”.")
        return data

    def filters(self) -> dict:
        self.is_valid()
        data = {name: value for name, value in getattr(self, "cleaned_data", {}).items() if name not in self.errors}
        return {
            "actor": (data.get("actor") or "").strip(),
            "action": (data.get("action") or "").strip(),
            "workload_class_slug": (data.get("workload_class") or "").strip(),
            "start": _as_utc(data.get("start")),
            "end": _as_utc(data.get("end")),
        }


def _as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    # The inputs say UTC; the form parsed them in the server's zone (UTC too, but say it once here).
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- Actions ---------------------------------------------------------------------------------------
class ActionFilterForm(forms.Form):
    kind = forms.ChoiceField(label="Kind", required=False, choices=[("", "All kinds"), *ActionKind.choices])
    state = forms.ChoiceField(label="State", required=False, choices=[("", "All states"), *ActionState.choices])
    workload_class = forms.ChoiceField(label="Class", required=False)

    def __init__(self, *args, classes: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["workload_class"].choices = [("", "All classes"), *((slug, slug) for slug in classes)]

    def filters(self) -> dict[str, str]:
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return {
            "kind": data.get("kind") or "",
            "state": data.get("state") or "",
            "workload_class_slug": data.get("workload_class") or "",
        }


# --- Schedules ---------------------------------------------------------------------------------------
class ScheduleForm(forms.Form):
    workload_class = forms.ChoiceField(label="Class", required=False)
    tz = forms.CharField(label="Time zone", required=False, max_length=64)

    def __init__(self, *args, classes: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["workload_class"].choices = classes
        self.fields["tz"].widget.attrs.update({"list": "time-zones", "placeholder": "UTC", "autocomplete": "off"})

    def clean_tz(self) -> str:
        value = (self.cleaned_data.get("tz") or "").strip() or "UTC"
        validate_timezone(value)
        return value

    def choice(self) -> tuple[str, str]:
        """(class slug or "", time zone): invalid values fall back to the first class and UTC."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return data.get("workload_class") or "", data.get("tz") or "UTC"
