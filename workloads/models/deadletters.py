"""The dead-letter mirror and the triage rules that act on it.

`DeadLetter` rows are the control plane's copy of what reached a class's dead-letter
subscription: the sync acks a message there only after its row is committed, so from then on the
mirror is the source of truth (replays republish from it; discards only change its status).
"""

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

# Payloads beyond this many bytes are kept cut short (and flagged): such a row can be inspected
# but not replayed as it is; an operator can replay an edited payload, or seek the subscription.
PAYLOAD_LIMIT_BYTES = 256 * 1024


class DeadLetterStatus(models.TextChoices):
    NEW = "new", "New"
    REPLAYED = "replayed", "Replayed"
    DISCARDED = "discarded", "Discarded"
    HELD = "held", "Held"


class PayloadFormat(models.TextChoices):
    JSON = "json", "JSON"  # in `payload`
    TEXT = "text", "Text"  # not JSON, valid UTF-8: in `payload_text`
    BASE64 = "base64", "Base64"  # binary (or text with NUL bytes, which PostgreSQL cannot store)


class DeadLetter(models.Model):
    # No index of its own: every index below starts with the class (see Meta.indexes).
    workload_class = models.ForeignKey(
        "workloads.WorkloadClass", on_delete=models.CASCADE, related_name="dead_letters", db_index=False
    )
    message_id = models.CharField(
        max_length=255, help_text="Id of the first dead-letter copy mirrored (the row's identity within its class)."
    )
    last_message_id = models.CharField(max_length=255, help_text="Id of the latest dead-letter copy mirrored.")
    payload_format = models.CharField(max_length=8, choices=PayloadFormat.choices, default=PayloadFormat.JSON)
    payload = models.JSONField(null=True, blank=True)
    payload_text = models.TextField(blank=True)
    payload_size = models.PositiveIntegerField(default=0, help_text="Size of the original payload in bytes.")
    payload_truncated = models.BooleanField(default=False)
    attributes = models.JSONField(default=dict, blank=True)
    ordering_key = models.CharField(max_length=1024, blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True)  # indexed in Meta: equality lookups only
    delivery_attempts = models.PositiveIntegerField(default=0)
    error_type = models.CharField(max_length=200, blank=True)
    error_message = models.TextField(blank=True)
    error_signature = models.CharField(max_length=64, blank=True)
    replay_count = models.PositiveIntegerField(default=0, help_text="Times this message has been replayed.")
    dead_letter_count = models.PositiveIntegerField(default=1, help_text="Times it reached the dead-letter queue.")
    first_seen = models.DateTimeField(help_text="When it first reached the dead-letter topic.")
    last_seen = models.DateTimeField(db_index=True, help_text="When it last reached the dead-letter topic.")
    mirrored_at = models.DateTimeField()

    status = models.CharField(max_length=10, choices=DeadLetterStatus.choices, default=DeadLetterStatus.NEW)
    replayed_message_id = models.CharField(max_length=255, blank=True)
    replayed_at = models.DateTimeField(null=True, blank=True)
    replay_action = models.ForeignKey(
        "workloads.Action", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    discarded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    discarded_by_label = models.CharField(max_length=150, blank=True)
    discarded_at = models.DateTimeField(null=True, blank=True)
    discard_reason = models.TextField(blank=True)
    held_at = models.DateTimeField(null=True, blank=True)
    # The rule that last acted on it; a rule acts again only after the message comes back.
    triage_rule = models.ForeignKey(
        "workloads.TriageRule", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    triaged_at = models.DateTimeField(null=True, blank=True)
    # Edit-and-replay: the original payload stays untouched above.
    edited_payload = models.JSONField(null=True, blank=True)
    edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    edited_by_label = models.CharField(max_length=150, blank=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    # Each edit-and-replay increments it; a writer sends the version it read, and one that read
    # before another's edit gets a 409 instead of replaying a payload it never saw.
    edit_version = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-last_seen", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["workload_class", "message_id"], name="one_dead_letter_per_message"),
        ]
        # Every index is written again by each change of a row's status (a replay marks thousands
        # of rows: none of those updates can be HOT), so each one here is what a query needs, and
        # no more: the class's own FK index is left out (every index on the class starts with
        # it), the idempotency key has no LIKE (varchar_pattern_ops) twin (it is looked up by
        # equality), and the foreign keys that are mostly empty (the replay, the discarding or
        # editing user, the triage rule) index only the rows that have one: the row deletes
        # behind on_delete=SET_NULL and the lookups by them name a value, which is never NULL.
        # The queries behind each: workloads/migrations/0032_dead_letter_indexes_narrowed.py.
        indexes = [
            models.Index(fields=["workload_class", "error_signature", "last_seen"]),
            models.Index(fields=["workload_class", "status", "last_seen"]),
            models.Index(fields=["workload_class", "last_message_id"]),
            models.Index(fields=["idempotency_key"], name="deadletter_idempotency_key"),
            models.Index(
                fields=["replay_action"], name="deadletter_replay_action", condition=Q(replay_action__isnull=False)
            ),
            models.Index(
                fields=["triage_rule", "triaged_at"],
                name="deadletter_triage_rule",
                condition=Q(triage_rule__isnull=False),
            ),
            models.Index(
                fields=["discarded_by"], name="deadletter_discarded_by", condition=Q(discarded_by__isnull=False)
            ),
            models.Index(fields=["edited_by"], name="deadletter_edited_by", condition=Q(edited_by__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.workload_class_id}:{self.message_id} ({self.status})"

    @property
    def is_edited(self) -> bool:
        return self.edited_payload is not None


class TriageAction(models.TextChoices):
    REPLAY_AFTER_DELAY = "replay_after_delay", "Replay after a delay"
    DISCARD = "discard", "Discard"
    HOLD = "hold", "Hold for a person"


class TriageRule(models.Model):
    """Match new dead letters (by class, signature or an attribute pattern) and act on them."""

    name = models.CharField(max_length=120)
    workload_class = models.ForeignKey(
        "workloads.WorkloadClass",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="triage_rules",
        help_text="Empty: every class.",
    )
    error_signature = models.CharField(max_length=64, blank=True)
    attribute_pattern = models.CharField(
        max_length=300,
        blank=True,
        help_text="NAME=GLOB on the message's attributes, e.g. cp-error-type=Unavailable* (case-insensitive; "
        "cp-error-type/-message/-signature also match the mirror's error fields).",
    )
    action = models.CharField(max_length=24, choices=TriageAction.choices)
    delay_seconds = models.PositiveIntegerField(
        default=600,
        validators=[MaxValueValidator(7 * 86400)],
        help_text="For replay: wait this long after the message arrived (at most 7 days).",
    )
    max_replays = models.PositiveIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="For replay: leave alone a message already replayed this often.",
    )
    rate_limit_per_hour = models.PositiveIntegerField(
        default=100,
        validators=[MinValueValidator(1), MaxValueValidator(100000)],
        help_text="Dead letters the rule may act on per hour.",
    )
    priority = models.IntegerField(
        default=100,
        validators=[MinValueValidator(-1000), MaxValueValidator(1000)],
        help_text="Lower runs first; the first rule to act on a message wins.",
    )
    enabled = models.BooleanField(default=True)
    last_applied_at = models.DateTimeField(null=True, blank=True)
    created_by_label = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # What people set, through the API and the triage-rules screen alike; the rest is kept by the system.
    EDITABLE_FIELDS = (
        "name",
        "workload_class",
        "error_signature",
        "attribute_pattern",
        "action",
        "delay_seconds",
        "max_replays",
        "rate_limit_per_hour",
        "priority",
        "enabled",
    )

    class Meta:
        ordering = ["priority", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def attribute_name_and_glob(self) -> tuple[str, str] | None:
        if not self.attribute_pattern:
            return None
        name, _, glob = self.attribute_pattern.partition("=")
        return name.strip(), glob.strip()

    def clean(self) -> None:
        errors = {}
        if not self.error_signature and not self.attribute_pattern:
            # A rule matching everything would replay or discard a whole queue by accident.
            errors["error_signature"] = "Give a signature, an attribute pattern, or both: a rule must not match all."
        if self.attribute_pattern and not ATTRIBUTE_PATTERN.match(self.attribute_pattern):
            errors["attribute_pattern"] = "Write NAME=GLOB, e.g. cp-error-type=Unavailable* (* and ? are wildcards)."
        if errors:
            raise ValidationError(errors)


ATTRIBUTE_PATTERN = re.compile(r"^\s*[^=\s]+\s*=\s*\S.*$")


def glob_regex(glob: str) -> str:
    """A shell-style glob (* and ?) as an anchored regular expression that PostgreSQL, SQLite
    (Django's REGEXP) and Python read alike."""
    parts = []
    for char in glob:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        elif char.isalnum() or char in " _-":
            parts.append(char)
        else:
            parts.append("\\" + char)
    return "^" + "".join(parts) + "$"


class DeadLetterSyncState(models.Model):
    """What the dead-letter sync last found in one class's dead-letter subscription, so the next
    syncs can skip a subscription that was empty (rechecked every DEAD_LETTER_SYNC_RECHECK_SECONDS,
    and at once when the telemetry poll sees dead letters waiting)."""

    workload_class = models.OneToOneField(
        "workloads.WorkloadClass", on_delete=models.CASCADE, primary_key=True, related_name="dead_letter_sync"
    )
    checked_at = models.DateTimeField()
    empty = models.BooleanField(help_text="The last check found no dead letter waiting.")

    def __str__(self) -> str:
        return f"{self.workload_class_id}: {'empty' if self.empty else 'had dead letters'} at {self.checked_at}"
