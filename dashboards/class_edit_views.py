"""Editing a class in the product's own form (admins): the fields people change day to day, its
cloud resource names, its SLOs and its schedule policies, all saved in one call to
workloads.services.classes.workload_class_update, the service behind PATCH
/api/v1/classes/<slug>/, with the same arguments the API passes (`fields`, and `slos` /
`schedules` as the whole list, matched by SLO kind and schedule name). So a change is validated
(the models' full_clean), audited as workload_class.update and provisioned exactly as the API's
is. Errors show beside their field, or beside their SLO or schedule row."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from controlplane.roles import Role
from dashboards.forms.class_edit import SCHEDULE_FIELDS, SLO_FIELDS, ClassEditForm, ScheduleFormSet, SloFormSet
from dashboards.rendering import role_required
from workloads.errors import ApplicationError
from workloads.models import SchedulePolicy, Slo, WorkloadClass
from workloads.services.classes import workload_class_update


def _rows(formset, names: tuple[str, ...]) -> tuple[list[dict], list]:
    """The list the API would receive (every kept row, in order) and the form behind each item, so
    the service's `slos.<index>.<field>` errors can be put back beside their row."""
    items, forms_by_index = [], []
    deleted = set(map(id, formset.deleted_forms))
    for form in formset.forms:
        if id(form) in deleted or (form.instance.pk is None and not form.has_changed()):
            continue
        items.append({name: form.cleaned_data[name] for name in names})
        forms_by_index.append(form)
    return items, forms_by_index


def _name_rows(formset, noun: str, key: str) -> None:
    """Each row's legend names the saved row it edits (by its natural key, as it was loaded), so
    a screen reader and a test can tell the rows apart."""
    for form in formset.forms:
        form.legend = (
            f"{noun} {form.initial[key]}" if form.instance.pk else f"New {noun if noun == 'SLO' else noun.lower()}"
        )


def _add_service_errors(form: ClassEditForm, error: ValidationError, rows: dict[str, list]) -> None:
    """The service's ValidationError beside the field (or SLO / schedule row) it names, or at the
    top of the form."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for key, errors in error.error_dict.items():
        relation, _, rest = key.partition(".")
        index, _, field = rest.partition(".")
        if relation in rows and index.isdigit() and int(index) < len(rows[relation]):
            row = rows[relation][int(index)]
            for item in errors:
                for message in item.messages:
                    row.add_error(field if field in row.fields else None, message)
            continue
        target = key if key in form.fields else None
        for item in errors:
            for message in item.messages:
                form.add_error(target, message if target else f"{key.replace('_', ' ')}: {message}")


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)  # the API's write role for classes
def class_edit(request, slug: str):
    workload_class = WorkloadClass.objects.select_related("cost_rates").filter(slug=slug).first()
    if workload_class is None:
        raise Http404("No such class.")
    data = request.POST or None
    # The forms validate a copy: the service reads the class afresh and applies only the changes.
    copy = WorkloadClass.objects.get(pk=workload_class.pk)
    form = ClassEditForm(data, instance=copy)
    slo_formset = SloFormSet(data, instance=copy, prefix="slos", queryset=Slo.objects.order_by("kind"))
    schedule_formset = ScheduleFormSet(
        data, instance=copy, prefix="schedules", queryset=SchedulePolicy.objects.order_by("-priority", "name")
    )
    _name_rows(slo_formset, "SLO", "kind")
    _name_rows(schedule_formset, "Schedule", "name")
    status = 200
    if request.method == "POST":
        # Evaluate all three so every error shows at once.
        valid = [f.is_valid() for f in (form, slo_formset, schedule_formset)]
        if all(valid):
            changed = {name: form.cleaned_data[name] for name in form.changed_data}
            slos, slo_rows = _rows(slo_formset, SLO_FIELDS)
            schedules, schedule_rows = _rows(schedule_formset, SCHEDULE_FIELDS)
            # As a PATCH that omits a list leaves it alone, an untouched formset is not sent.
            slos = slos if slo_formset.has_changed() else None
            schedules = schedules if schedule_formset.has_changed() else None
            if not changed and slos is None and schedules is None:
                messages.info(request, "Nothing changed.")
                return redirect("dashboards:class-detail", slug=slug)
            try:
                updated = workload_class_update(
                    actor=request.user, workload_class=workload_class, fields=changed, slos=slos, schedules=schedules
                )
            except ValidationError as error:
                _add_service_errors(form, error, {"slos": slo_rows, "schedules": schedule_rows})
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                names = [form[name].label.lower() for name in form.changed_data]
                names += ["SLOs"] * (slos is not None) + ["schedules"] * (schedules is not None)
                note = (
                    f" Its cloud resources are being updated (action #{updated.provisioning_action.pk})."
                    if updated.provisioning_action is not None
                    else ""
                )
                messages.success(request, f"{workload_class.slug} saved: {', '.join(names)}.{note}")
                return redirect("dashboards:class-detail", slug=slug)
        status = 400
    context = {"wc": workload_class, "form": form, "slo_formset": slo_formset, "schedule_formset": schedule_formset}
    return render(request, "dashboards/class_edit.html", context, status=status)
