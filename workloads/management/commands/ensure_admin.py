import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from controlplane import request_context
from controlplane.roles import Role
from workloads.services.users import user_create, user_set_role


class Command(BaseCommand):
    help = (
        "Make sure an admin account exists for `make run`: from ADMIN_USERNAME and ADMIN_PASSWORD "
        "when set, otherwise 'admin' with a generated password, printed once and kept in "
        "var/admin-password.txt (readable only by you)."
    )

    def handle(self, *args, **options):
        username = os.environ.get("ADMIN_USERNAME") or "admin"
        password = os.environ.get("ADMIN_PASSWORD")
        User = get_user_model()
        with request_context.using(via="cli"):
            user = User.objects.filter(username=username).first()
            if user is None:
                generated = password is None
                password = password or secrets.token_urlsafe(12)
                user = user_create(actor=None, username=username, role=Role.ADMIN, password=None)
                user.set_password(password)  # chosen by the operator: no strength rules for a local demo
                user.save(update_fields=["password"])
                if generated:
                    # Shown once on the terminal of the person who ran `make run`, and kept in var/.
                    self._remember(password)
                    self.stdout.write(self.style.SUCCESS(f"Admin account: {username} / {password}"))
                else:
                    self.stdout.write(self.style.SUCCESS(f"Admin account: {username} (password from ADMIN_PASSWORD)"))
                return
            user_set_role(actor=None, user=user, role=Role.ADMIN)
            if password:
                user.set_password(password)
                user.save(update_fields=["password"])
                self.stdout.write(f"Admin account: {username} (password from ADMIN_PASSWORD)")
            else:
                self.stdout.write(
                    f"Admin account: {username} (password in var/admin-password.txt; "
                    f"change it with `manage.py changepassword {username}`)"
                )

    def _remember(self, password: str) -> None:
        path = settings.VAR_DIR / "admin-password.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(password + "\n")
        path.chmod(0o600)
