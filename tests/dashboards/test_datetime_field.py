"""The one datetime-local field of the screens (dashboards/forms/datetimes.py): the seek's target
and the audit log's range. The browser sends the wall time typed, without a zone; the inputs are
labelled UTC, so that is how it is read, whatever time zone is active. Bad values are form
errors, never a 500."""

from datetime import UTC, datetime, timedelta
from datetime import timezone as fixed_offset

import pytest
from django import forms
from django.utils import timezone

from dashboards.forms.audit import AuditFilterForm
from dashboards.forms.datetimes import UtcDateTimeField
from dashboards.forms.pool import SeekForm
from tests.dashboards.conftest import HX
from tests.dashboards.oncall_fixtures import DEFERRABLE_SLUG
from workloads.models import Action


class TimeForm(forms.Form):
    moment = UtcDateTimeField(required=False)


def _cleaned(value: str):
    form = TimeForm({"moment": value})
    assert form.is_valid(), form.errors
    return form.cleaned_data["moment"]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("2026-03-04T13:05", datetime(2026, 3, 4, 13, 5, tzinfo=UTC)),  # what datetime-local sends
        ("2026-03-04T13:05:30", datetime(2026, 3, 4, 13, 5, 30, tzinfo=UTC)),  # with step="1"
        ("2026-03-04 13:05", datetime(2026, 3, 4, 13, 5, tzinfo=UTC)),
        ("2026-03-04", datetime(2026, 3, 4, tzinfo=UTC)),
        ("2026-03-04T15:05+02:00", datetime(2026, 3, 4, 13, 5, tzinfo=UTC)),  # an offset keeps its instant
    ],
)
def test_a_value_is_read_as_utc(typed, expected):
    moment = _cleaned(typed)
    assert moment == expected and moment.utcoffset() == timedelta(0)


def test_a_zoneless_value_is_utc_whatever_zone_is_active():
    with timezone.override("Europe/Berlin"):
        assert _cleaned("2026-07-01T10:00") == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
        # A wall time Berlin skips (the spring change) is still a valid UTC time.
        assert _cleaned("2026-03-29T02:30") == datetime(2026, 3, 29, 2, 30, tzinfo=UTC)


def test_a_value_round_trips_through_the_input():
    form = TimeForm({"moment": "2026-03-04T13:05"})
    assert form.is_valid()
    html = str(form["moment"])
    assert 'type="datetime-local"' in html and 'value="2026-03-04T13:05"' in html
    # An initial value in another zone is shown as the UTC wall time, and posts back as the same instant.
    initial = datetime(2026, 3, 4, 15, 5, tzinfo=fixed_offset(timedelta(hours=2)))
    with timezone.override("Europe/Berlin"):
        shown = str(TimeForm(initial={"moment": initial})["moment"])
    assert 'value="2026-03-04T13:05"' in shown
    assert _cleaned("2026-03-04T13:05") == initial


@pytest.mark.parametrize(
    "typed",
    ["yesterday", "2026-13-04T10:00", "2026-03-04T25:00", "0001-01-01T00:30+01:00"],
)
def test_a_bad_value_is_a_form_error(typed):
    form = TimeForm({"moment": typed})
    assert not form.is_valid()
    assert form.errors["moment"] == ["Enter a valid date/time."]


def test_both_forms_use_it():
    assert isinstance(SeekForm().fields["to_time"], UtcDateTimeField)
    assert all(isinstance(AuditFilterForm().fields[name], UtcDateTimeField) for name in ("start", "end"))
    with timezone.override("America/New_York"):
        audit = AuditFilterForm({"start": "2026-03-04T13:00", "end": "2026-03-04T15:30+01:00"})
        assert audit.filters()["start"] == datetime(2026, 3, 4, 13, 0, tzinfo=UTC)
        assert audit.filters()["end"] == datetime(2026, 3, 4, 14, 30, tzinfo=UTC)
        seek = SeekForm({"to_time": "2026-01-01T10:00"})
        assert seek.is_valid(), seek.errors
        assert seek.cleaned_data["to_time"] == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


def test_a_bad_time_on_the_audit_screen_is_explained(ui_client, viewer):
    response = ui_client(viewer).get("/audit/?start=2026-13-04T10:00")
    assert response.status_code == 200
    assert "Enter a valid date/time." in response.content.decode()


def test_a_bad_seek_time_is_explained(ui_client, operator, oncall):
    response = ui_client(operator).post(
        f"/classes/{DEFERRABLE_SLUG}/seek/", {"to_time": "0001-01-01T00:30+01:00", "reason": "x"}, headers=HX
    )
    assert response.status_code < 500
    assert "Enter a valid date/time." in response.content.decode()
    assert not Action.objects.filter(kind="seek").exists()
