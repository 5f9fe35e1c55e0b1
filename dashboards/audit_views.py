"""The audit log: every change, filtered and paged."""

from django.core.paginator import Paginator
from django.views.decorators.http import require_GET

from controlplane.roles import Role
from dashboards.forms.audit import AuditFilterForm
from dashboards.rendering import render_page as _render
from dashboards.rendering import role_required
from workloads.selectors import audit as audit_selectors
from workloads.selectors import fleet

AUDIT_PAGE_SIZE = 50


@require_GET
@role_required(Role.VIEWER)
def audit_log(request):
    form = AuditFilterForm(request.GET or None)
    filters = form.filters()
    page = Paginator(audit_selectors.audit_events(**filters), AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "page": page,
        "filtered": any(filters.values()),
        "known_actions": audit_selectors.KNOWN_ACTIONS,
        "class_slugs": [wc.slug for wc in fleet.classes_for_choice()],
    }
    return _render(request, "dashboards/audit.html", "audit-results", context)
