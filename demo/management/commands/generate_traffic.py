"""Post synthetic events for the demo classes through the real ingestion API, forever (or for
--duration seconds), with a daily shape, bursts, duplicates and invalid events."""

import http.client
import json
import os
import random
import time
from collections import Counter, deque
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from controlplane import request_context
from controlplane.roles import Role
from demo.traffic import DEMO_TRAFFIC, TrafficPlan, make_event, make_invalid_event
from workloads.models import WorkloadClass
from workloads.services.tokens import api_token_issue
from workloads.services.users import user_create

TRAFFIC_USER = "traffic-generator"


def _token() -> str:
    """The generator authenticates like any producer: an ingest-scoped token of its own user."""
    if os.environ.get("TRAFFIC_TOKEN"):
        return os.environ["TRAFFIC_TOKEN"]
    with request_context.using(via="cli"):
        user = get_user_model().objects.filter(username=TRAFFIC_USER).first()
        if user is None:
            user = user_create(actor=None, username=TRAFFIC_USER, role=Role.VIEWER)
        _row, raw = api_token_issue(actor=None, user=user, name="demo traffic", scopes=["ingest:*"])
    return raw


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('WEB_PORT', '8000')}")
        parser.add_argument(
            "--rate",
            type=float,
            default=float(os.environ.get("TRAFFIC_RATE", "4")),
            help="events/s for a weight-1 class at its daily peak (default 4)",
        )
        parser.add_argument(
            "--day-seconds", type=float, default=1200.0, help="length of a compressed demo day (default 20 minutes)"
        )
        parser.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0: never)")
        parser.add_argument("--duplicate-rate", type=float, default=0.05)
        parser.add_argument("--invalid-rate", type=float, default=0.03)
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args, url, rate, day_seconds, duration, duplicate_rate, invalid_rate, seed, **options):
        if rate < 0 or day_seconds <= 0:
            raise CommandError("--rate must be >= 0 and --day-seconds > 0.")
        present = set(WorkloadClass.objects.values_list("slug", flat=True))
        traffic = [t for t in DEMO_TRAFFIC if t.slug in present]
        if not traffic:
            raise CommandError("None of the demo classes exist; run manage.py seed_demo first.")
        sender = _Sender(url, _token())
        rng = random.Random(seed)
        plan = TrafficPlan(base_rate=rate, day_seconds=day_seconds)
        recent: dict[str, deque] = {t.slug: deque(maxlen=50) for t in traffic}
        counts: Counter = Counter()
        serial = int(time.time() * 1000) % 10**9  # fresh ids on every start, so restarts do not collide
        started = last_report = time.monotonic()
        self.stdout.write(f"Sending demo traffic to {url} for {', '.join(t.slug for t in traffic)}")
        while not duration or time.monotonic() - started < duration:
            tick_started = time.monotonic()
            for spec in traffic:
                count = plan.events_this_tick(spec, elapsed=tick_started - started, tick=1.0, rng=rng)
                events = []
                for _ in range(count):
                    serial += 1
                    roll = rng.random()
                    if roll < duplicate_rate and recent[spec.slug]:
                        events.append(rng.choice(recent[spec.slug]))
                    elif roll < duplicate_rate + invalid_rate:
                        events.append(make_invalid_event(spec.slug, rng, serial=serial))
                    else:
                        event = make_event(spec.slug, rng, serial=serial, poison=rng.random() < spec.poison_rate)
                        recent[spec.slug].append(event)
                        events.append(event)
                for start in range(0, len(events), spec.batch_size):
                    chunk = events[start : start + spec.batch_size]
                    counts.update(sender.send(spec.slug, chunk if spec.batch_size > 1 else chunk[0]))
            if time.monotonic() - last_report >= 30:
                last_report = time.monotonic()
                self.stdout.write(", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick_started)))
        self.stdout.write(", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


class _Sender:
    """One keep-alive HTTP connection to the ingestion API; waits for the web server to come up."""

    def __init__(self, url: str, token: str):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.connection = None

    def send(self, slug: str, body) -> Counter:
        payload = json.dumps(body).encode()
        for attempt in range(5):
            try:
                if self.connection is None:
                    self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
                self.connection.request("POST", f"/api/v1/classes/{slug}/events/", payload, self.headers)
                response = self.connection.getresponse()
                data = json.loads(response.read() or b"{}")
                return _tally(response.status, data, isinstance(body, list))
            except (OSError, http.client.HTTPException, json.JSONDecodeError):
                if self.connection is not None:
                    self.connection.close()
                self.connection = None
                time.sleep(min(5, 0.5 * 2**attempt))  # the web process may still be starting
        return Counter(errors=1)


def _tally(status: int, data: dict, batch: bool) -> Counter:
    if batch and isinstance(data, dict) and "results" in data:
        return Counter(
            accepted=data["accepted"],
            duplicates=data["duplicates"],
            rejected=data["rejected"],
            conflicts=data["conflicts"],
        )
    name = {202: "accepted", 200: "duplicates", 400: "rejected", 422: "conflicts"}.get(status, f"http_{status}")
    return Counter({name: 1})
