"""Every API path ends with a slash; the spellings round 1 published without one keep working and are
marked deprecated in the schema."""

import yaml
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver

from workloads.api.schema import OLD_SPELLING_SUFFIX


def _api_routes():
    resolver = get_resolver()
    (api,) = [p for p in resolver.url_patterns if isinstance(p, URLResolver) and str(p.pattern) == "api/v1/"]
    for pattern in api.url_patterns:
        assert isinstance(pattern, URLPattern)
        yield str(pattern.pattern), pattern.name


def test_every_api_path_ends_with_a_slash_but_the_old_spellings():
    for route, name in _api_routes():
        if "(?P<format>" in route:
            continue  # the router's `.json` spellings of its own routes
        route = route.removesuffix("$")
        if name.endswith(OLD_SPELLING_SUFFIX):
            assert not route.endswith("/"), route
        else:
            assert route.endswith("/") or route.endswith("/?"), f"{route} ({name}) does not end with a slash"


def test_the_old_spelling_answers_like_the_new_one(client, admin_user):
    client.force_login(admin_user)
    new = client.get("/api/v1/incident-mode/")
    old = client.get("/api/v1/incident-mode")
    assert new.status_code == old.status_code == 200
    assert new.json() == old.json()


def test_the_schema_marks_only_the_old_spellings_deprecated(db, tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--file", str(out))
    paths = yaml.safe_load(out.read_text())["paths"]
    old = {route for route in paths if not route.endswith("/")}
    assert "/api/v1/classes/{slug}/events" in old and "/api/v1/incident-mode" in old
    for route, operations in paths.items():
        for operation in operations.values():
            if isinstance(operation, dict) and "operationId" in operation:
                assert operation.get("deprecated", False) is (route in old), route
    assert not paths["/api/v1/classes/{slug}/events/"]["post"].get("deprecated")
