"""Forms of the on-call screens: dead-letter triage, triage rules, seek and snapshots, pauses,
incident mode and the migration comparison. They parse and validate input for the views; every
decision (what may be replayed, what a pause does) stays in the services."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from django import forms
from django.core import validators
from django.core.exceptions import ValidationError

from workloads.domain.payloads import MAX_NESTING_DEPTH
from workloads.models import DeadLetterStatus, TriageRule, WorkloadClass
from workloads.selectors.deadletters import DeadLetterFilter
from workloads.services import deadletters as dead_letter_services

# --- Dead letters ------------------------------------------------------------------------------------
SINCE_CHOICES = [("", "Any time"), ("1h", "Last hour"), ("24h", "Last 24 hours"), ("7d", "Last 7 days")]
SINCE_DELTAS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
# "Needs attention": what a person still has to decide about.
OPEN_STATUSES = (DeadLetterStatus.NEW, DeadLetterStatus.HELD)
STATUS_CHOICES = [
    ("open", "Needs attention (new, held)"),
    *DeadLetterStatus.choices,
    ("all", "Any status"),
]


@dataclass(frozen=True)
class DeadLetterQuery:
    """The triage screen's filters, parsed. `selection()` is the dead-letter filter that both the
    lists show and "all matching" replays or discards: one filter, so they cannot disagree."""

    workload_class: WorkloadClass | None
    error_signature: str
    status: str  # a STATUS_CHOICES key
    since: str  # a SINCE_CHOICES key
    seen_after: datetime | None

    @property
    def statuses(self) -> tuple[str, ...]:
        if self.status == "open":
            return tuple(OPEN_STATUSES)
        if self.status == "all":
            return tuple(DeadLetterStatus.values)
        return (self.status,)

    @property
    def is_filtered(self) -> bool:
        return bool(self.workload_class or self.error_signature or self.since or self.status != "open")

    def selection(self, ids: tuple[int, ...] = ()) -> DeadLetterFilter:
        """The dead-letter filter: the explicit `ids`, or every row matching these filters."""
        if ids:
            return DeadLetterFilter(workload_class=self.workload_class, ids=ids)
        return DeadLetterFilter(
            workload_class=self.workload_class,
            error_signature=self.error_signature,
            seen_after=self.seen_after,
            statuses=self.statuses,
        )

    def params(self) -> dict[str, str]:
        """The filters as query parameters, for links and hidden fields."""
        return {
            "workload_class": self.workload_class.slug if self.workload_class else "",
            "error_signature": self.error_signature,
            "status": self.status,
            "since": self.since,
        }


class DeadLetterFilterForm(forms.Form):
    """GET filters of the dead-letter screens, named as the API's (`error_signature`; the old
    `signature` still read). Unknown values fall back to the defaults, so a stale bookmark still
    shows something."""

    workload_class = forms.ChoiceField(label="Class", required=False)
    error_signature = forms.CharField(label="Signature", required=False, max_length=64)
    status = forms.ChoiceField(label="Status", required=False, choices=STATUS_CHOICES)
    since = forms.ChoiceField(label="Last seen", required=False, choices=SINCE_CHOICES)

    def __init__(self, data=None, *args, classes: list[WorkloadClass], **kwargs):
        if data is not None and data.get("signature") and not data.get("error_signature"):
            data = data.copy()
            data["error_signature"] = data["signature"]  # links and bookmarks from before the rename
        super().__init__(data, *args, **kwargs)
        self.classes = {wc.slug: wc for wc in classes}
        self.fields["workload_class"].choices = [("", "All classes"), *((wc.slug, wc.slug) for wc in classes)]
        self.fields["error_signature"].widget.attrs.update({"placeholder": "e.g. 3f9a…", "autocomplete": "off"})

    def query(self, *, now: datetime) -> DeadLetterQuery:
        self.is_valid()
        data = {name: value for name, value in getattr(self, "cleaned_data", {}).items() if name not in self.errors}
        since = data.get("since") or ""
        return DeadLetterQuery(
            workload_class=self.classes.get(data.get("workload_class") or ""),
            error_signature=(data.get("error_signature") or "").strip(),
            status=data.get("status") or "open",
            since=since,
            seen_after=now - SINCE_DELTAS[since] if since in SINCE_DELTAS else None,
        )


def selected_ids(data) -> tuple[int, ...]:
    """The checked rows of a selection form (`ids`), ignoring anything that is not a row id."""
    ids = []
    for value in data.getlist("ids"):
        try:
            number = int(value)
        except (TypeError, ValueError):
            continue
        if number > 0 and number not in ids:
            ids.append(number)
    return tuple(ids)


class ReplayForm(forms.Form):
    name = forms.CharField(label="Name", required=False, max_length=120)
    velocity = forms.FloatField(
        label="Velocity (messages/s)",
        required=False,
        initial=dead_letter_services.DEFAULT_REPLAY_VELOCITY,
        help_text=f"{dead_letter_services.MIN_REPLAY_VELOCITY:g} to {dead_letter_services.MAX_REPLAY_VELOCITY:g}; "
        "the replay never publishes faster.",
        widget=forms.NumberInput(attrs={"step": "any", "inputmode": "decimal"}),
    )
    reason = forms.CharField(label="Reason", required=False, max_length=2000)
    confirm_count = forms.IntegerField(label="Type the number to confirm", required=False, min_value=0)


class DiscardForm(forms.Form):
    reason = forms.CharField(label="Reason", required=False, max_length=2000)
    confirm_count = forms.IntegerField(label="Type the number to confirm", required=False, min_value=0)


class EditAndReplayForm(forms.Form):
    payload = forms.CharField(
        label="Corrected payload (JSON)",
        widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "false", "class": "code-input"}),
    )
    reason = forms.CharField(label="Reason", required=False, max_length=2000)
    # The dead letter's edit_version when the page was loaded: a later edit by someone else is a 409.
    edit_version = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def clean_payload(self):
        text = self.cleaned_data["payload"]
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValidationError(f"This is not JSON: {exc}.") from None
        except RecursionError:
            raise ValidationError(f"This JSON nests too deep (at most {MAX_NESTING_DEPTH} levels).") from None


class TriageRuleForm(forms.ModelForm):
    workload_class = forms.ModelChoiceField(
        label="Class",
        queryset=WorkloadClass.objects.order_by("slug"),
        required=False,
        to_field_name="slug",
        empty_label="Every class",
    )

    class Meta:
        model = TriageRule
        fields = TriageRule.EDITABLE_FIELDS
        labels = {
            "error_signature": "Error signature",
            "attribute_pattern": "Attribute pattern",
            "delay_seconds": "Replay delay (seconds)",
            "max_replays": "Max replays",
            "rate_limit_per_hour": "Rate limit (per hour)",
        }


# --- Seek and snapshots --------------------------------------------------------------------------------
class SeekForm(forms.Form):
    to_time = forms.DateTimeField(
        label="To time (UTC)",
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    snapshot = forms.CharField(
        label="Or to snapshot",
        required=False,
        max_length=255,
        widget=forms.TextInput(attrs={"list": "seek-snapshots", "autocomplete": "off"}),
    )
    reason = forms.CharField(label="Reason", required=False, max_length=2000)
    confirm = forms.BooleanField(required=False)
    accept_rerun = forms.BooleanField(required=False)

    def clean_to_time(self):
        moment = self.cleaned_data.get("to_time")
        # The field says UTC; the browser sends a zone-less local time.
        return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment

    def clean(self):
        data = super().clean()
        if not self.errors and bool(data.get("to_time")) == bool((data.get("snapshot") or "").strip()):
            raise ValidationError("Give either a time or a snapshot to seek to.")
        return data


class SnapshotForm(forms.Form):
    name = forms.CharField(label="Snapshot name", required=False, max_length=255, help_text="Default: before-deploy-…")
    reason = forms.CharField(label="Reason", required=False, max_length=2000)


# --- Pauses and incident mode ------------------------------------------------------------------------------
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


class PauseForm(forms.Form):
    reason = forms.CharField(label="Reason", max_length=2000)
    expires_in_minutes = ExpiryField()

    def __init__(self, *args, retention_seconds: int, default_minutes: int, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["expires_in_minutes"]
        field.choices = expiry_choices(retention_seconds=retention_seconds, default_minutes=default_minutes)
        field.initial = default_minutes


class OverrideForm(forms.Form):
    """A manual instance count for a set time: a hold like a pause, at a count."""

    instances = forms.IntegerField(label="Instances", min_value=1)
    reason = forms.CharField(label="Reason", max_length=2000)
    expires_in_minutes = ExpiryField()

    def __init__(self, *args, max_instances: int, default_minutes: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["instances"].max_value = max_instances
        self.fields["instances"].validators.append(validators.MaxValueValidator(max_instances))
        self.fields["instances"].widget.attrs["max"] = max_instances
        field = self.fields["expires_in_minutes"]
        field.choices = expiry_choices(default_minutes=default_minutes)
        field.initial = default_minutes


class ExtendForm(forms.Form):
    expires_in_minutes = ExpiryField(label="Ends after (from now)")

    def __init__(self, *args, default_minutes: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["expires_in_minutes"].choices = expiry_choices(default_minutes=default_minutes)
        self.fields["expires_in_minutes"].initial = default_minutes


class IncidentEnterForm(forms.Form):
    reason = forms.CharField(
        label="Reason",
        max_length=2000,
        help_text="Shown in the banner on every page and kept in the audit log.",
        widget=forms.TextInput(attrs={"placeholder": "e.g. primary database failover"}),
    )
    ticket = forms.CharField(label="Ticket", required=False, max_length=200)
    expires_in_minutes = ExpiryField()

    def __init__(self, *args, default_minutes: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["expires_in_minutes"].choices = expiry_choices(default_minutes=default_minutes)
        self.fields["expires_in_minutes"].initial = default_minutes

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise ValidationError("Say why.")
        return reason


class ExitForm(forms.Form):
    reason = forms.CharField(label="Reason", required=False, max_length=2000)


# --- Migration comparison ------------------------------------------------------------------------------------
MAX_COMPARE_DAYS = 400


class CompareForm(forms.Form):
    """Two periods (whole UTC days, both included) of one class, or of two classes."""

    a_class = forms.ChoiceField(label="Class A")
    a_start = forms.DateField(label="A from", widget=forms.DateInput(attrs={"type": "date"}))
    a_end = forms.DateField(label="A to (included)", widget=forms.DateInput(attrs={"type": "date"}))
    b_class = forms.ChoiceField(label="Class B", required=False)
    b_start = forms.DateField(label="B from", widget=forms.DateInput(attrs={"type": "date"}))
    b_end = forms.DateField(label="B to (included)", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, classes: list[WorkloadClass], **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(wc.slug, f"{wc.name} ({wc.slug})") for wc in classes]
        self.fields["a_class"].choices = choices
        self.fields["b_class"].choices = [("", "Same as A"), *choices]

    def clean(self):
        data = super().clean()
        for side in ("a", "b"):
            start, end = data.get(f"{side}_start"), data.get(f"{side}_end")
            if start and end:
                if start > end:
                    self.add_error(f"{side}_end", "The end must not be before the start.")
                elif (end - start).days + 1 > MAX_COMPARE_DAYS:
                    self.add_error(f"{side}_end", f"A period may span at most {MAX_COMPARE_DAYS} days.")
        return data

    @staticmethod
    def bounds(start, end, now: datetime) -> tuple[datetime, datetime]:
        """[start 00:00, end + 1 day 00:00) in UTC, cut at now."""
        first = datetime.combine(start, time.min, tzinfo=UTC)
        last = min(datetime.combine(end, time.min, tzinfo=UTC) + timedelta(days=1), now)
        return first, max(last, first + timedelta(seconds=1))
