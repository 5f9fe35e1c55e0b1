"""Dead-letter triage in the browser: groups by signature, the messages of a group, one message,
replay (preview, dry run, confirmation, progress), discard, edit-and-replay, and triage rules.

Every change goes through the services the REST API calls (`workloads.services.deadletters`,
`workloads.services.triage`); these views only parse the forms, check the role, and choose what to
render. POSTs answer htmx with the panel that replaces the one that asked, and a plain form post
with a page (or a redirect), so each button also works without JavaScript.
"""

import json
from dataclasses import replace
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, trigger_client_event

from controlplane.roles import Role
from dashboards.forms.dead_letters import (
    DeadLetterFilterForm,
    DiscardForm,
    EditAndReplayForm,
    ReplayForm,
    TriageRuleForm,
    selected_ids,
)
from dashboards.rendering import render_page as _render
from dashboards.rendering import role_required, selected_environment, with_toasts
from workloads.errors import ApplicationError
from workloads.models import AuditResult, DeadLetter, DeadLetterStatus, TriageRule, WorkloadClass
from workloads.selectors import fleet
from workloads.selectors.deadletters import dead_letter_groups
from workloads.services import deadletters as services
from workloads.services import triage as triage_services
from workloads.services.audit import audit_refused_request

GROUPS_PAGE_SIZE = 50
MESSAGES_PAGE_SIZE = 25


def _filter_form(data, environment=None) -> DeadLetterFilterForm:
    # The lists offer the switcher's environment's classes (a posted selection may name any class).
    return DeadLetterFilterForm(data, classes=list(fleet.classes_for_choice(environment)))


def _rows(request, query):
    # The same filter "replay / discard all matching" acts on, within the switcher's environment.
    rows = query.selection().queryset()
    environment = selected_environment(request)
    return rows.filter(workload_class__environment=environment) if environment is not None else rows


@require_GET
@role_required(Role.VIEWER, narrowed=True)
def dead_letters(request):
    now = timezone.now()
    form = _filter_form(request.GET or None, selected_environment(request))
    query = form.query(now=now)
    groups = dead_letter_groups(now=now, rows=_rows(request, query))
    page = Paginator(groups, GROUPS_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"form": form, "query": query, "page": page, "now": now}
    return _render(request, "dashboards/dead_letters.html", "dead-letter-groups", context)


@require_GET
@role_required(Role.VIEWER, narrowed=True)
def dead_letter_messages(request):
    now = timezone.now()
    form = _filter_form(request.GET or None, selected_environment(request))
    query = form.query(now=now)
    page = None
    if query.workload_class is not None:
        rows = _rows(request, query).select_related("workload_class", "replay_action").order_by("-last_seen", "-id")
        page = Paginator(rows, MESSAGES_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "query": query,
        "page": page,
        "now": now,
        "groups_url": f"{reverse('dashboards:dead-letters')}?{urlencode(query.params())}",
    }
    return _render(request, "dashboards/dead_letter_messages.html", "dead-letter-messages", context)


def _dead_letter_or_404(pk: int) -> DeadLetter:
    row = DeadLetter.objects.select_related("workload_class", "replay_action", "triage_rule").filter(pk=pk).first()
    if row is None:
        raise Http404(f"No dead letter #{pk}.")
    return row


def _initial_payload(row: DeadLetter) -> str:
    if row.edited_payload is not None:
        return json.dumps(row.edited_payload, indent=2, ensure_ascii=False, sort_keys=True)
    if row.payload_format == "json":
        return json.dumps(row.payload, indent=2, ensure_ascii=False, sort_keys=True)
    return row.payload_text if row.payload_format == "text" else ""


@require_GET
@role_required(Role.VIEWER)
def dead_letter_detail(request, pk: int):
    row = _dead_letter_or_404(pk)
    form = EditAndReplayForm(initial={"payload": _initial_payload(row), "edit_version": row.edit_version})
    return render(request, "dashboards/dead_letter_detail.html", _detail_context(row, form))


def _detail_context(row: DeadLetter, form: EditAndReplayForm, **extra) -> dict:
    return {
        "row": row,
        "form": form,
        "refusal": services.replay_refusal(row),
        "schema": row.workload_class.payload_schema,
        **extra,
    }


# --- Replay and discard -------------------------------------------------------------------------------
def _posted_selection(request):
    """(query, ids, all_matching) from a selection form; the filter's time bound travels as an
    absolute time once a confirmation showed it, so the confirmed rows are the ones counted."""
    query = _filter_form(request.POST).query(now=timezone.now())
    pinned = parse_datetime(request.POST.get("seen_after") or "")
    if pinned is not None and query.since:
        query = replace(query, seen_after=pinned)
    all_matching = request.POST.get("all_matching") == "1"
    ids = () if all_matching else selected_ids(request.POST)
    return query, ids, all_matching


def _panel_response(request, context: dict, *, status: int = 200):
    """The triage panel for htmx; a page around it for a plain form post."""
    if request.htmx:
        # htmx swaps only 2xx answers: a refusal is still the panel to show, so it is a 200 there.
        return with_toasts(request, render(request, "dashboards/partials/triage_panel.html", context))
    return render(request, "dashboards/dead_letter_confirm.html", context, status=status)


def _selection_context(query, ids, all_matching) -> dict:
    return {
        "query": query,
        "ids": ids,
        "all_matching": all_matching,
        "seen_after": query.seen_after.isoformat() if query.seen_after else "",
    }


def _audit_refusal(request, exc: ApplicationError, selection) -> None:
    """A confirmed replay or discard that a service's guard refused is audited, as in the API."""
    audit_refused_request(
        request=request,
        action="request.refused",
        result=AuditResult.FAILURE,
        reason=exc.message,
        code=exc.code,
        workload_class_slug=selection.workload_class.slug,
    )


def _refuse(request, context: dict, message: str):
    context["error"] = message
    return _panel_response(request, context, status=400)


@require_POST
@role_required(Role.OPERATOR)
def replay(request):
    query, ids, all_matching = _posted_selection(request)
    step = request.POST.get("step") or "review"
    form = ReplayForm(request.POST if step != "review" else None)
    context = {"kind": "replay", "form": form, **_selection_context(query, ids, all_matching)}
    if query.workload_class is None:
        return _refuse(request, context, "Choose a class first: a replay republishes to one class's topic.")
    if not ids and not all_matching:
        return _refuse(request, context, "Select dead letters first, or choose “all matching this filter”.")
    selection = query.selection(ids)
    context["selection"] = selection
    velocity = form.cleaned_data.get("velocity") if form.is_bound and form.is_valid() else None
    context["velocity"] = f"{velocity or services.DEFAULT_REPLAY_VELOCITY:g}"
    try:
        preview = context["preview"] = services.replay_preview(selection=selection)
        context["audience"] = services.replay_audience(workload_class=query.workload_class)
        context["confirm_needed"] = services.count_to_confirm(
            selection=selection, preview=preview, count=preview.replayable
        )
        if step == "dry_run":
            context["dry_run"] = services.replay_dry_run(selection=selection)
        elif step == "confirm":
            if not form.is_valid():
                return _panel_response(request, context, status=400)
            data = form.cleaned_data
            action = services.replay_request(
                actor=request.user,
                selection=selection,
                velocity=data.get("velocity"),
                name=data.get("name") or "",
                reason=data.get("reason") or "",
                confirm_count=data.get("confirm_count"),
            )
            messages.success(request, f"Replay #{action.pk} requested: {context['preview'].replayable} to publish.")
            if not request.htmx:
                return redirect("dashboards:action-detail", action_id=action.pk)
            context.update(action=action, started=True)
            response = _panel_response(request, context)
            # The list below refreshes and drops the selection, as after a discard: a second click
            # must not replay the same rows again. It refreshes once more when the replay ends.
            trigger_client_event(response, "dead-letters-changed", {})
            return response
    except ApplicationError as exc:
        if step == "confirm":
            _audit_refusal(request, exc, selection)
        return _refuse(request, context, exc.message)
    return _panel_response(request, context)


@require_POST
@role_required(Role.OPERATOR)
def discard(request):
    query, ids, all_matching = _posted_selection(request)
    step = request.POST.get("step") or "review"
    form = DiscardForm(request.POST if step == "confirm" else None)
    context = {"kind": "discard", "form": form, **_selection_context(query, ids, all_matching)}
    if query.workload_class is None:
        return _refuse(request, context, "Choose a class first.")
    if not ids and not all_matching:
        return _refuse(request, context, "Select dead letters first, or choose “all matching this filter”.")
    selection = query.selection(ids)
    context["selection"] = selection
    try:
        preview = services.replay_preview(selection=selection)
        context.update(
            preview=preview,
            to_discard=preview.to_discard,
            confirm_needed=services.count_to_confirm(selection=selection, preview=preview, count=preview.to_discard),
        )
        if step == "confirm" and form.is_valid():
            count = services.dead_letters_discard(
                actor=request.user,
                selection=selection,
                reason=form.cleaned_data.get("reason") or "",
                confirm_count=form.cleaned_data.get("confirm_count"),
            )
            messages.success(request, f"Discarded {count} dead letter{'s' if count != 1 else ''}.")
            if not request.htmx:
                return redirect(f"{reverse('dashboards:dead-letter-messages')}?{urlencode(query.params())}")
            context.update(discarded=count)
            response = _panel_response(request, context)
            trigger_client_event(response, "dead-letters-changed", {})
            return response
    except ApplicationError as exc:
        if step == "confirm":
            _audit_refusal(request, exc, selection)
        return _refuse(request, context, exc.message)
    return _panel_response(request, context)


@require_POST
@role_required(Role.OPERATOR)
def edit_and_replay(request, pk: int):
    row = _dead_letter_or_404(pk)
    form = EditAndReplayForm(request.POST)
    status = 400
    if form.is_valid():
        try:
            action = services.dead_letter_edit_and_replay(
                actor=request.user,
                dead_letter=row,
                payload=form.cleaned_data["payload"],
                reason=form.cleaned_data.get("reason") or "",
                expected_version=form.cleaned_data.get("edit_version"),
            )
        except ApplicationError as exc:
            if exc.code == "edit_conflict":
                status = 409
            # Field errors from the class's schema go under the editor, one line each.
            for field, problems in (exc.extra.get("errors") or {}).items():
                for problem in problems:
                    form.add_error("payload", f"{field}: {problem}")
            if not exc.extra.get("errors"):
                form.add_error(None, exc.message)
        else:
            messages.success(request, f"Edited payload saved; replay #{action.pk} requested.")
            if not request.htmx:
                return redirect("dashboards:action-detail", action_id=action.pk)
            row.refresh_from_db()
            form = EditAndReplayForm(initial={"payload": _initial_payload(row), "edit_version": row.edit_version})
            context = _detail_context(row, form, action=action)
            return render(request, "dashboards/dead_letter_detail.html#edit-panel", context)
    context = _detail_context(row, form)
    if request.htmx:  # htmx swaps only 2xx answers, and the errors are what to show
        return render(request, "dashboards/dead_letter_detail.html#edit-panel", context)
    return render(request, "dashboards/dead_letter_detail.html", context, status=status)


# --- Triage rules ---------------------------------------------------------------------------------------
@require_GET
@role_required(Role.VIEWER, narrowed=True)
def triage_rules(request):
    rules = TriageRule.objects.select_related("workload_class").order_by("priority", "id")
    environment = selected_environment(request)
    if environment is not None:  # its classes' rules, and those for every class (they apply there too)
        rules = rules.filter(Q(workload_class__environment=environment) | Q(workload_class__isnull=True))
    return render(request, "dashboards/triage_rules.html", {"rules": rules})


def _rule_or_404(pk: int) -> TriageRule:
    rule = TriageRule.objects.select_related("workload_class").filter(pk=pk).first()
    if rule is None:
        raise Http404(f"No triage rule #{pk}.")
    return rule


def _save_rule(request, form: TriageRuleForm, rule: TriageRule | None):
    fields = form.cleaned_data
    try:
        if rule is None:
            rule = triage_services.triage_rule_create(actor=request.user, fields=fields)
            messages.success(request, f"Triage rule “{rule.name}” created.")
        else:
            rule = triage_services.triage_rule_update(actor=request.user, rule=rule, fields=fields)
            messages.success(request, f"Triage rule “{rule.name}” saved.")
    except ValidationError as exc:
        form.add_error(None, exc)
        return None
    return redirect("dashboards:triage-rules")


@require_http_methods(["GET", "POST"])
@role_required(Role.OPERATOR)
def triage_rule_new(request):
    if request.method == "POST":
        form = TriageRuleForm(request.POST)
        if form.is_valid():
            done = _save_rule(request, form, None)
            if done is not None:
                return done
        return render(request, "dashboards/triage_rule_form.html", {"form": form, "rule": None}, status=400)
    # Prefilled from a dead-letter group ("Create a rule from this group") or any link alike.
    initial = {k: request.GET[k] for k in ("name", "error_signature", "attribute_pattern") if request.GET.get(k)}
    if request.GET.get("workload_class"):
        initial["workload_class"] = request.GET["workload_class"]
    form = TriageRuleForm(initial=initial)
    return render(request, "dashboards/triage_rule_form.html", {"form": form, "rule": None})


@require_GET
@role_required(Role.OPERATOR)
def triage_rule_preview(request):
    """How many dead letters the rule being written would match now, asked by its form as it is
    typed (htmx): the matching is the triage tick's own (triage_rule_matches, the DeadLetterFilter
    that the lists, replay and discard select rows with), on an unsaved rule. Reads only."""
    slug = request.GET.get("workload_class") or ""
    workload_class = WorkloadClass.objects.filter(slug=slug).first() if slug else None
    rule = TriageRule(
        workload_class=workload_class,
        error_signature=(request.GET.get("error_signature") or "").strip()[:64],
        attribute_pattern=(request.GET.get("attribute_pattern") or "").strip()[:300],
    )
    context = {"rule": rule, "unknown_class": slug if slug and workload_class is None else ""}
    try:
        rule.clean()
    except ValidationError as exc:
        context["problem"] = " ".join(message for messages_ in exc.message_dict.values() for message in messages_)
    else:
        matches = triage_services.triage_rule_matches(rule)
        context["matched"] = matches.count()
        context["new"] = matches.filter(status=DeadLetterStatus.NEW).count()
        if workload_class is not None and not rule.attribute_pattern:
            # The same rows on the messages list: its filter is the same class and signature.
            query = {"workload_class": slug, "error_signature": rule.error_signature, "status": "all"}
            context["list_url"] = f"{reverse('dashboards:dead-letter-messages')}?{urlencode(query)}"
    return render(request, "dashboards/partials/triage_rule_preview.html", context)


@require_http_methods(["GET", "POST"])
@role_required(Role.OPERATOR)
def triage_rule_edit(request, pk: int):
    rule = _rule_or_404(pk)
    if request.method == "POST":
        form = TriageRuleForm(request.POST, instance=TriageRule.objects.get(pk=rule.pk))
        if form.is_valid():
            done = _save_rule(request, form, rule)
            if done is not None:
                return done
        return render(request, "dashboards/triage_rule_form.html", {"form": form, "rule": rule}, status=400)
    return render(request, "dashboards/triage_rule_form.html", {"form": TriageRuleForm(instance=rule), "rule": rule})


@require_POST
@role_required(Role.OPERATOR)
def triage_rule_toggle(request, pk: int):
    rule = _rule_or_404(pk)
    rule = triage_services.triage_rule_update(actor=request.user, rule=rule, fields={"enabled": not rule.enabled})
    messages.success(request, f"Triage rule “{rule.name}” {'enabled' if rule.enabled else 'disabled'}.")
    return redirect("dashboards:triage-rules")


@require_POST
@role_required(Role.OPERATOR)
def triage_rule_delete(request, pk: int):
    rule = _rule_or_404(pk)
    name = rule.name
    triage_services.triage_rule_delete(actor=request.user, rule=rule)
    messages.success(request, f"Triage rule “{name}” deleted.")
    if request.htmx:  # asked for through hx-confirm: the whole tab moves on
        return HttpResponseClientRedirect(reverse("dashboards:triage-rules"))
    return redirect("dashboards:triage-rules")
