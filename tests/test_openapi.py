from django.core.management import call_command


def test_the_openapi_schema_validates_without_warnings(db, tmp_path):
    # --fail-on-warn turns every drf-spectacular warning (unresolvable types, name clashes) into a
    # failure, and --validate checks the result against the OpenAPI 3 specification.
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    assert "/api/v1/classes/{slug}/" in text
    assert "bearerAuth" in text
