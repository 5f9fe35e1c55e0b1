import ipaddress

from django.core.management.base import BaseCommand, CommandError

from controlplane import request_context
from workloads.services.login_limits import login_unlock


class Command(BaseCommand):
    help = (
        "Lift the failed-login limits of a username (from every address, and the ceiling over all "
        "addresses), and of a source address with --address; written to the audit log."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--address", help="Also clear this source address's failed logins.")

    def handle(self, *args, username, address, **options):
        if address:
            try:
                address = str(ipaddress.ip_address(address))
            except ValueError:
                raise CommandError(f"--address must be an IPv4 or IPv6 address, got {address!r}.") from None
        with request_context.using(via="cli"):
            login_unlock(actor=None, username=username, address=address)
        suffix = f" and address {address}" if address else ""
        self.stdout.write(f"Unlocked logins for {username}{suffix}.")
