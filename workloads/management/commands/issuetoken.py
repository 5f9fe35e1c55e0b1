from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from controlplane import request_context
from workloads.services.tokens import api_token_issue


class Command(BaseCommand):
    help = (
        "Issue an API token acting as the user <username> and print it once. Scopes: '*' (default), "
        "'read', 'ingest:*', 'ingest:<class-slug>'."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--scope", action="append", dest="scopes", default=None)
        parser.add_argument("--name", help="What the token is for (default: cli-<username>).")
        parser.add_argument("--expires-in-days", type=int, default=None)

    def handle(self, *args, username, scopes, name, expires_in_days, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username}; create one with manage.py createuser.")
        if expires_in_days is not None and expires_in_days <= 0:
            raise CommandError("--expires-in-days must be a positive number of days.")
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        with request_context.using(via="cli"):
            try:
                _token, raw = api_token_issue(
                    actor=None, user=user, name=name or f"cli-{username}", scopes=scopes, expires_at=expires_at
                )
            except ValidationError as exc:
                raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        # The token alone on stdout, so scripts can capture it: TOKEN=$(manage.py issuetoken bot)
        self.stdout.write(raw)
