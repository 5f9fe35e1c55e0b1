"""Dead-letter triage: the list's filters, the selection, replay, discard, edit-and-replay and triage
rules."""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from django import forms
from django.core.exceptions import ValidationError

from workloads.domain.payloads import MAX_NESTING_DEPTH
from workloads.models import DeadLetterStatus, TriageRule, WorkloadClass
from workloads.selectors.deadletters import DeadLetterFilter
from workloads.services import deadletters as dead_letter_services

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
