"""A refused choice names the valid ones.

DRF answers a bad choice with `"queue_age" is not a valid choice.` and Django forms (which
django-filter's query parameters use) with `Select a valid choice. queue_age is not one of the
available choices.`: neither says what would be accepted. Here every choice of the API does:

- serializer fields: `ChoiceField` and `MultipleChoiceField` below, which `StrictModelSerializer`
  also uses for model fields with choices;
- filter parameters: `ChoiceListingFilterBackend` gives each choice field of a filter set the same
  message before it validates.

The schema lists the same values in each parameter's and enum's description (drf-spectacular's
`ENUM_GENERATE_CHOICE_DESCRIPTION`, on by default).
"""

from django import forms
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import serializers

INVALID_CHOICE = '"{input}" is not a valid choice. Valid choices: {choices}.'


def choices_text(values) -> str:
    """The valid values, quoted, in their order: `"a", "b", "c"`."""
    return ", ".join(f'"{value}"' for value in values if value != "")


class ChoiceListingMixin:
    def fail(self, key, **kwargs):
        if key == "invalid_choice":
            raise serializers.ValidationError(
                INVALID_CHOICE.format(input=kwargs.get("input"), choices=choices_text(self.choices)),
                code=key,
            )
        return super().fail(key, **kwargs)


class ChoiceField(ChoiceListingMixin, serializers.ChoiceField):
    pass


class MultipleChoiceField(ChoiceListingMixin, serializers.MultipleChoiceField):
    pass


class ChoiceListingFilterBackend(DjangoFilterBackend):
    """django-filter's backend, with each choice parameter's error naming the valid values."""

    def get_filterset(self, request, queryset, view):
        filterset = super().get_filterset(request, queryset, view)
        if filterset is not None:
            for field in filterset.form.fields.values():
                if isinstance(field, forms.ChoiceField) and not isinstance(field, forms.ModelChoiceField):
                    values = [str(value) for value, _label in field.choices]
                    # Django formats this message with %-style params: escape the values' own %.
                    listed = choices_text(values).replace("%", "%%")
                    field.error_messages["invalid_choice"] = (
                        f'"%(value)s" is not a valid choice. Valid choices: {listed}.'
                    )
        return filterset
