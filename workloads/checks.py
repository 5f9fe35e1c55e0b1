"""System checks that look at stored data (tagged `database`: `migrate` and
`manage.py check --database default` run them)."""

from django.core import checks

from workloads.domain.schemas import non_local_references, regex_problems


@checks.register(checks.Tags.database)
def stored_schemas_stay_inside(app_configs=None, databases=None, **kwargs):
    """Classes saved before non-local `$ref`s and RE2-incompatible patterns were refused: their
    events are now rejected with a field error (nothing is fetched); an admin must fix the schema."""
    if not databases or "default" not in databases:
        return []
    from django.db import connections

    from workloads.models import WorkloadClass

    # `migrate` runs database checks before it applies anything: on a new database there is
    # nothing stored to check yet.
    if WorkloadClass._meta.db_table not in connections["default"].introspection.table_names():
        return []
    messages = []
    for slug, schema in WorkloadClass.objects.order_by("slug").values_list("slug", "payload_schema"):
        problems = non_local_references(schema) + regex_problems(schema)
        if problems:
            messages.append(
                checks.Warning(
                    f"The payload schema of class {slug!r} cannot be evaluated safely: {'; '.join(problems)}.",
                    hint='Inline referenced schemas under "$defs" and use RE2-compatible patterns '
                    "(no backreferences or lookarounds); until then its events are rejected.",
                    id="workloads.W001",
                )
            )
    return messages
