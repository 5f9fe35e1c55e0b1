import os

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from controlplane import request_context
from controlplane.roles import Role
from workloads.services.users import user_create, user_set_role


class Command(BaseCommand):
    help = "Create a user with a role (viewer, operator or admin); --update changes an existing one."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=["viewer", "operator", "admin"])
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--password-from-env",
            metavar="VAR",
            help="Read the password from this environment variable (never from the command line). "
            "Without it the user can only use API tokens.",
        )
        parser.add_argument("--update", action="store_true", help="Set role/password if the user exists.")

    def handle(self, *args, username, role, email, password_from_env, update, **options):
        password = None
        if password_from_env:
            password = os.environ.get(password_from_env)
            if not password:
                raise CommandError(f"The environment variable {password_from_env} is empty or not set.")
        role = Role.from_name(role)
        with request_context.using(via="cli"):
            existing = get_user_model().objects.filter(username=username).first()
            try:
                if existing is None:
                    user_create(actor=None, username=username, role=role, password=password, email=email)
                    self.stdout.write(f"Created {username} with role {role.group_name}.")
                elif update:
                    user_set_role(actor=None, user=existing, role=role)
                    if password:
                        existing.set_password(password)
                        existing.save(update_fields=["password"])
                    self.stdout.write(f"Updated {username}: role {role.group_name}.")
                else:
                    raise CommandError(f"User {username} already exists; pass --update to change its role.")
            except ValidationError as exc:
                raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
