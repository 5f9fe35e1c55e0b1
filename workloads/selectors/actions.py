"""Read side of the actions screens: the list, one action, its steps."""

from django.db.models import Case, IntegerField, QuerySet, Value, When

from workloads.models import Action, ActionStep, StepState


def action_list(
    *, kind: str = "", state: str = "", workload_class_slug: str = "", environment=None
) -> QuerySet[Action]:
    """With `environment`, only its classes' actions (as the API's ?environment=)."""
    actions = Action.objects.select_related("workload_class")
    if environment is not None:
        actions = actions.filter(workload_class__environment=environment)
    if kind:
        actions = actions.filter(kind=kind)
    if state:
        actions = actions.filter(state=state)
    if workload_class_slug:
        actions = actions.filter(workload_class__slug=workload_class_slug)
    return actions.order_by("-created_at", "-id")


def action_for_detail(action_id: int) -> Action | None:
    return Action.objects.select_related("workload_class").filter(pk=action_id).first()


def action_steps(*, action: Action, failed_first: bool = False) -> QuerySet[ActionStep]:
    """The action's steps in order of position; with `failed_first`, failed steps lead."""
    steps = ActionStep.objects.filter(action=action)
    if failed_first:
        failed = Case(When(state=StepState.FAILED, then=Value(0)), default=Value(1), output_field=IntegerField())
        return steps.order_by(failed, "position")
    return steps.order_by("position")
