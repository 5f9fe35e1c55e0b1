"""Reaching a form's fields by name in a loop: `{% for name in "a_class a_start"|split_words %}`
with `form|field_named:name`."""

from django import template

register = template.Library()


@register.filter
def split_words(text: str) -> list[str]:
    return str(text).split()


@register.filter
def field_named(form, name: str):
    return form[name]
