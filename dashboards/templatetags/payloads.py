"""A message's body as people read it: indented JSON, the text itself, or base64 said as such."""

import base64
import json

from django import template

register = template.Library()


@register.filter
def pretty_json(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


@register.simple_tag
def payload_text(row) -> str:
    """A dead letter's body as text: indented JSON, the text itself, or base64 said as such."""
    if row.payload_format == "json":
        return pretty_json(row.payload)
    if row.payload_format == "base64":
        size = len(base64.b64decode(row.payload_text or ""))
        return f"(binary, {size} bytes, shown as base64)\n{row.payload_text}"
    return row.payload_text
