"""The schedules screen: a class's week of scheduled bounds in a chosen time zone."""

import functools
import zoneinfo

from django.utils import timezone
from django.views.decorators.http import require_GET

from controlplane.roles import Role, readable_environment_ids
from dashboards.forms.schedules import ScheduleForm
from dashboards.rendering import render_page as _render
from dashboards.rendering import role_required
from workloads.selectors import schedules


@functools.cache
def _time_zones() -> tuple[str, ...]:
    """Every IANA zone name, for the time zone field's suggestions. Read once per process:
    available_timezones() walks the tz database on disk at every call (about 50 ms)."""
    return tuple(sorted(zoneinfo.available_timezones()))


@require_GET
@role_required(Role.VIEWER, narrowed=True)
def schedule_week(request):
    # Someone whose only roles are environment overrides sees the classes of those environments.
    environment_ids = readable_environment_ids(request.user)
    classes = schedules.schedule_classes(environment_ids=environment_ids)
    form = ScheduleForm(request.GET or None, classes=[(wc.slug, f"{wc.name} ({wc.slug})") for wc in classes])
    slug, tz_name = form.choice()
    workload_class = schedules.class_with_schedules(
        slug or (classes[0].slug if classes else ""), environment_ids=environment_ids
    )
    now = timezone.now()
    context = {
        "form": form,
        "classes": classes,
        "workload_class": workload_class,
        "tz_name": tz_name,
        "time_zones": _time_zones(),
        "hours": range(24),
        "now": now,
    }
    if workload_class is not None:
        context["grid"] = schedules.week_grid(workload_class=workload_class, tz_name=tz_name, now=now)
        context["target_preview"] = schedules.target_preview(workload_class=workload_class, now=now)
    return _render(request, "dashboards/schedules.html", "schedule-grid", context)
