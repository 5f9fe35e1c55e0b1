"""A screen's filters carried through its links (a query string) and its forms (hidden inputs)."""

from urllib.parse import urlencode

from django import template
from django.utils.html import format_html_join

register = template.Library()


@register.simple_tag
def hidden_fields(params: dict):
    """Hidden inputs carrying a filter (name -> value) through a form."""
    return format_html_join(
        "", '<input type="hidden" name="{}" value="{}">', ((name, value) for name, value in params.items() if value)
    )


@register.filter
def as_query(params: dict) -> str:
    """A dict of filters as a query string, empty values left out."""
    return urlencode({name: value for name, value in (params or {}).items() if value})
