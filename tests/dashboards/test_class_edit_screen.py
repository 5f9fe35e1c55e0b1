"""The class edit form's SLO and schedule rows and resource names (dashboards/class_edit_views.py),
through the rendered HTML: what a browser would send back is rebuilt from the page itself."""

from html.parser import HTMLParser

import pytest

from tests.dashboards.helpers import HEALTHY_SLUG
from workloads.models import AuditEvent, SchedulePolicy, WorkloadClass

pytestmark = pytest.mark.django_db
URL = f"/classes/{HEALTHY_SLUG}/edit/"


class _FormValues(HTMLParser):
    """The name/value pairs the page's form submits as rendered (checked boxes, selected options,
    textareas), as a list so multi-valued fields (days of the week) keep every value."""

    def __init__(self):
        super().__init__()
        self.values: list[tuple[str, str]] = []
        self._select = self._textarea = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        name = attrs.get("name")
        if tag == "input" and name:
            if attrs.get("type") in ("checkbox", "radio") and "checked" not in attrs:
                return
            self.values.append((name, attrs.get("value") or ("on" if attrs.get("type") == "checkbox" else "")))
        elif tag == "select":
            self._select = name
        elif tag == "option" and self._select and "selected" in attrs:
            self.values.append((self._select, attrs.get("value", "")))
        elif tag == "textarea":
            self._textarea = name
            self.values.append((name, ""))

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            name, text = self.values.pop()
            self.values.append((name, text + data.lstrip("\n") if not text else text + data))


def _submitted(client, **changes) -> dict:
    parser = _FormValues()
    parser.feed(client.get(URL).content.decode())
    data: dict[str, list[str]] = {}
    for name, value in parser.values:
        data.setdefault(name, []).append(value)
    for name, value in changes.items():
        name = name.replace("__", "-")
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value if isinstance(value, list) else [value]
    return data


@pytest.fixture
def admin_client(client, admin_user, demo_fleet):
    client.force_login(admin_user)
    return client


def _updates():
    return AuditEvent.objects.filter(action="workload_class.update", workload_class_slug=HEALTHY_SLUG)


def test_sending_the_form_back_unchanged_changes_nothing(admin_client):
    # Decimal targets, times and day lists must compare equal to what the page rendered, or every
    # save would rewrite (and audit) the SLOs and schedules.
    response = admin_client.post(URL, _submitted(admin_client), follow=True)
    assert response.status_code == 200
    assert "Nothing changed." in response.content.decode()
    assert not _updates().exists()


def test_a_schedule_row_deleted_on_the_form_is_deleted_and_audited(admin_client):
    names = list(SchedulePolicy.objects.filter(workload_class__slug=HEALTHY_SLUG).order_by("-priority", "name"))
    assert len(names) >= 2
    response = admin_client.post(URL, _submitted(admin_client, schedules__0__DELETE="on"))
    assert response.status_code == 302, response.content.decode()[:2000]
    left = set(SchedulePolicy.objects.filter(workload_class__slug=HEALTHY_SLUG).values_list("name", flat=True))
    assert left == {policy.name for policy in names[1:]}
    assert set(_updates().get().changes) == {"schedules"}


def test_a_resource_name_is_changed_as_patch_changes_it(admin_client):
    before = WorkloadClass.objects.get(slug=HEALTHY_SLUG)
    page = admin_client.get(URL).content.decode()
    assert "re-provisions" in page
    response = admin_client.post(URL, _submitted(admin_client, worker_pool=f"{before.worker_pool}-v2"))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert WorkloadClass.objects.get(pk=before.pk).worker_pool == f"{before.worker_pool}-v2"
    assert set(_updates().get().changes) == {"worker_pool"}


def test_a_runbook_link_typed_without_its_scheme_is_saved_as_https(admin_client):
    # Django 6's default; Django 5 assumed http:// (and warns: pyproject.toml makes that an error).
    response = admin_client.post(
        URL, _submitted(admin_client, runbook_url="runbooks.example.com/drain", slos__0__runbook_url="slo.example.com")
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    workload_class = WorkloadClass.objects.get(slug=HEALTHY_SLUG)
    assert workload_class.runbook_url == "https://runbooks.example.com/drain"
    assert workload_class.slos.filter(runbook_url="https://slo.example.com").count() == 1


def test_a_bad_schedule_is_refused_beside_its_row_and_nothing_is_saved(admin_client):
    response = admin_client.post(
        URL, _submitted(admin_client, schedules__0__min_instances="9", schedules__0__max_instances="3")
    )
    assert response.status_code == 400
    assert "must not exceed the maximum" in response.content.decode()
    assert response.context["schedule_formset"].forms[0].errors
    assert not _updates().exists()


def _writable(serializer_class) -> set[str]:
    return {name for name, field in serializer_class().fields.items() if not field.read_only}


def test_the_form_edits_what_the_api_writes():
    # dashboards may not import workloads.api (.importlinter), so the form spells the serializers'
    # field lists again (dashboards/forms/class_edit.py); this keeps the copies from drifting apart.
    from dashboards.forms.class_edit import EDITABLE, SCHEDULE_FIELDS, SLO_FIELDS
    from workloads.api.serializers import SchedulePolicySerializer, SloSerializer, WorkloadClassSerializer

    assert set(SLO_FIELDS) == _writable(SloSerializer)
    assert set(SCHEDULE_FIELDS) == _writable(SchedulePolicySerializer)
    assert set(EDITABLE) <= _writable(WorkloadClassSerializer)
