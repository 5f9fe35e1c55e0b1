"""The audit log: every change, filtered and paged."""

from django.core.paginator import Paginator
from django.views.decorators.http import require_GET

from controlplane.roles import Role, readable_environment_ids
from dashboards.forms.audit import AuditFilterForm
from dashboards.rendering import render_page as _render
from dashboards.rendering import role_required
from workloads.selectors import audit as audit_selectors
from workloads.selectors import fleet

AUDIT_PAGE_SIZE = 50


@require_GET
@role_required(Role.VIEWER, narrowed=True)
def audit_log(request):
    form = AuditFilterForm(request.GET or None)
    filters = form.filters()
    # Someone whose only roles are environment overrides reads the events of those environments' classes.
    environment_ids = readable_environment_ids(request.user)
    events = audit_selectors.audit_events(**filters, environment_ids=environment_ids)
    page = Paginator(events, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    classes = fleet.classes_for_choice()
    if environment_ids is not None:
        classes = classes.filter(environment_id__in=environment_ids)
    context = {
        "form": form,
        "page": page,
        "filtered": any(filters.values()),
        "known_actions": audit_selectors.KNOWN_ACTIONS,
        "class_slugs": [wc.slug for wc in classes],
    }
    return _render(request, "dashboards/audit.html", "audit-results", context)
