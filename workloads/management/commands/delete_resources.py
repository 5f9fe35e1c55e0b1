from django.core.management.base import BaseCommand, CommandError

from controlplane import request_context
from workloads.errors import ApplicationError
from workloads.models import Action
from workloads.services.actions import action_run
from workloads.services.class_deletion import delete_resources_again


class Command(BaseCommand):
    help = (
        "Finish deleting a deleted class's resources: request a new delete_resources action for what the "
        "given one did not delete (a step refused for a missing IAM role, once it is granted), and run it "
        "unless --no-run. Audited as the command line."
    )

    def add_arguments(self, parser):
        parser.add_argument("action_id", type=int, help="The delete_resources action that left resources behind.")
        parser.add_argument("--no-run", action="store_true", help="Only request it; a worker runs it.")

    def handle(self, *args, action_id, no_run, **options):
        action = Action.objects.filter(pk=action_id).first()
        if action is None:
            raise CommandError(f"No action {action_id}.")
        with request_context.using(via="cli"):
            try:
                again = delete_resources_again(actor=None, action=action)
            except ApplicationError as exc:
                raise CommandError(exc.message) from None
            self.stdout.write(
                f"action {again.pk}: delete {len(again.parameters['resources'])} resource(s) of {again.target}"
            )
            if no_run:
                return
            finished = action_run(action_id=again.pk) or Action.objects.get(pk=again.pk)
        for step in finished.steps.order_by("position"):
            outcome = (
                step.error
                if step.state == "failed"
                else ("already gone" if step.result.get("already_gone") else "deleted")
            )
            self.stdout.write(f"  {step.key}: {outcome}")
        if finished.state != "succeeded":
            raise CommandError(f"action {finished.pk} ended {finished.state}: {finished.error}")
