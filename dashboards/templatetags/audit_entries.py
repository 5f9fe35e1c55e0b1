"""Audit events and action records in words: the action, the fields a change touched, the
change itself and the extra fields."""

import json

from django import template

from dashboards.charts import action_label
from dashboards.diffs import readable_changes

register = template.Library()


@register.filter
def event_detail(event) -> str:
    """What an audit event changed, as a short list of fields; nothing for a creation or a
    deletion, where every field changed and the list says nothing."""
    changes = event.changes
    if not changes or event.action.endswith((".create", ".delete")):
        return ""
    names = sorted(changes)
    shown = ", ".join(name.replace("_", " ") for name in names[:4])
    return "changed " + shown + (f" and {len(names) - 4} more" if len(names) > 4 else "")


@register.filter
def audit_action(action: str) -> str:
    return action_label(action)


@register.filter
def readable_diff(changes):
    return readable_changes(changes)


@register.filter
def json_text(value) -> str:
    """A JSON value in one line, for the audit log's extra fields."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), sort_keys=True)
