"""A 400 for a bad choice names the valid values, whether the choice is a query parameter, a
filter or a body field; and no API serializer uses a choice field that would not."""

import importlib
import inspect
import pkgutil

from rest_framework import serializers

import workloads.api
from tests.factories import WorkloadClassFactory
from workloads.api.choices import ChoiceListingMixin
from workloads.models import DeadLetterStatus, SloKind, TriageAction
from workloads.selectors.series import SERIES


def _quoted(values) -> list[str]:
    return [f'"{value}"' for value in values]


def test_a_bad_metric_names_the_metrics(db, client_as, viewer):
    WorkloadClassFactory(slug="steady")
    response = client_as(viewer).get("/api/v1/classes/steady/metrics/?metric=queue_age")
    assert response.status_code == 400
    [message] = response.json()["errors"]["metric"]
    assert message.startswith('"queue_age" is not a valid choice. Valid choices: ')
    assert all(value in message for value in _quoted(SERIES))


def test_a_bad_filter_choice_names_the_choices(db, client_as, viewer):
    response = client_as(viewer).get("/api/v1/slos/?kind=queue_agee")
    assert response.status_code == 400
    [message] = response.json()["errors"]["kind"]
    assert message.startswith('"queue_agee" is not a valid choice.')
    assert all(value in message for value in _quoted(SloKind.values))


def test_a_bad_multiple_choice_filter_names_the_choices(db, client_as, viewer):
    response = client_as(viewer).get("/api/v1/dead-letters/?status=new&status=gone")
    assert response.status_code == 400
    [message] = response.json()["errors"]["status"]
    assert message.startswith('"gone" is not a valid choice.')
    assert all(value in message for value in _quoted(DeadLetterStatus.values))


def test_a_bad_model_choice_in_a_body_names_the_choices(db, client_as, operator):
    response = client_as(operator).post(
        "/api/v1/triage-rules/", {"name": "r", "action": "explode", "error_signature": "abc"}, format="json"
    )
    assert response.status_code == 400
    [message] = response.json()["errors"]["action"]
    assert message.startswith('"explode" is not a valid choice.')
    assert all(value in message for value in _quoted(TriageAction.values))


def _api_serializer_classes():
    for module_info in pkgutil.iter_modules(workloads.api.__path__):
        module = importlib.import_module(f"workloads.api.{module_info.name}")
        for _name, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, serializers.BaseSerializer) and value.__module__.startswith("workloads.api"):
                yield value
            # Views keep their query serializers inside them (InputSerializer).
            for _inner, nested in inspect.getmembers(value, inspect.isclass):
                if issubclass(nested, serializers.BaseSerializer) and nested.__module__.startswith("workloads.api"):
                    yield nested


def _choice_fields(serializer, path=""):
    if isinstance(serializer, serializers.ListSerializer):
        serializer = serializer.child
    for name, field in serializer.fields.items():
        where = f"{path}{name}"
        child = getattr(field, "child", None)
        for candidate in (field, child):
            if isinstance(candidate, serializers.BaseSerializer):
                yield from _choice_fields(candidate, f"{where}.")
            elif isinstance(candidate, serializers.ChoiceField) and not field.read_only:
                # (read-only fields never parse input, so never refuse a choice)
                yield where, candidate


def test_every_choice_field_of_the_api_names_its_choices(db):
    checked = 0
    for serializer_class in set(_api_serializer_classes()):
        try:
            serializer = serializer_class()
            fields = list(_choice_fields(serializer))
        except (TypeError, AssertionError):
            continue  # an abstract base, or needs arguments: checked where it is used
        for where, field in fields:
            checked += 1
            assert isinstance(field, ChoiceListingMixin), f"{serializer_class.__name__}.{where}"
    assert checked >= 6


def test_the_schema_describes_each_choice_parameter_with_its_values(db, client_as, viewer):
    schema = client_as(viewer).get("/api/schema/?format=json").json()
    described = 0
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                values = parameter["schema"].get("enum") or parameter["schema"].get("items", {}).get("enum")
                if values:
                    described += 1
                    for value in values:
                        assert f"`{value}`" in parameter.get("description", ""), (path, parameter["name"], value)
    assert described >= 10
