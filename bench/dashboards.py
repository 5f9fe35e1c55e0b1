"""Server time of the fleet overview, the class detail page (every range) and the cost screen with
200 classes, as history grows from 3 days of rollups to 30: each page is requested through Django's
test client as a logged-in viewer (middleware, view, selectors and templates, no network), and the
median is printed with the ratio long / short. A ratio near 1 means the page does not grow with
history. Not part of `make test`.

    createdb -h 127.0.0.1 -U postgres dashboards_bench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/dashboards_bench python -m bench.dashboards
    dropdb -h 127.0.0.1 -U postgres dashboards_bench

BENCH_LONG_MINUTE_DAYS (default 14, the default minute retention) sets how many days of minute
rollups the long history keeps; older days are hourly, as after downsampling.

Reading the ratios: the overview and the short ranges read the same rows either way (ratio ~1).
The 7 d and 30 d ranges and the 30-day cost report are not full in the short history, so the long
run reads more rows, but never more than the range itself holds (hourly rows: 24 per class and
day), whatever the history beyond it.
"""

import os
import statistics
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings.base")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.telemetry import CLASSES, _fill, _setup_classes  # noqa: E402

SHORT = {"minute_days": 3, "hour_days": 3}
LONG = {"minute_days": int(os.environ.get("BENCH_LONG_MINUTE_DAYS", "14")), "hour_days": 30}
PAGES = {
    f"fleet overview ({CLASSES} classes)": "/",
    "class detail 1h": "/classes/bench-007/?range=1h",
    "class detail 6h": "/classes/bench-007/?range=6h",
    "class detail 24h": "/classes/bench-007/?range=24h",
    "class detail 7d": "/classes/bench-007/?range=7d",
    "class detail 30d": "/classes/bench-007/?range=30d",
    "class charts 30d (htmx)": "/classes/bench-007/?range=30d&htmx=1",
    "cost 30d by team": "/cost/?period=30d&group_by=team",
}


def _client() -> Client:
    from django.contrib.auth import get_user_model

    from controlplane.roles import Role
    from workloads.services.users import user_create

    user = get_user_model().objects.filter(username="bench-viewer").first()
    if user is None:
        user = user_create(actor=None, username="bench-viewer", role=Role.VIEWER, password="bench-viewer-password-1")
    client = Client()
    client.force_login(user)
    return client


def _live_values(now) -> None:
    """Each class's live row and SLO status, as the poll and evaluation ticks leave them."""
    from tests.workloads.telemetry_doubles import FakeMetrics, installed_metrics
    from workloads.providers.base import MetricKind
    from workloads.services.telemetry import metrics_poll, slo_alerts_evaluate

    with installed_metrics(FakeMetrics()) as fake:
        for metric in MetricKind:
            fake.set(metric, lambda slug, end: 1.0)
        fake.set(MetricKind.COMPLETION_LATENCY, lambda slug, end: None)
        metrics_poll(now=now, window_minutes=5)
    slo_alerts_evaluate(now=now)


def _timed(client: Client, url: str, repeat: int = 7) -> float:
    headers = {"HX-Request": "true"} if url.endswith("&htmx=1") else {}
    client.get(url, headers=headers)  # warm caches (templates, role, session)
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(samples)


def _measure(client: Client, now) -> dict[str, float]:
    _live_values(now)
    return {name: _timed(client, url) for name, url in PAGES.items()}


def main():
    call_command("migrate", verbosity=0)
    _setup_classes()
    client = _client()
    now = timezone.now()
    _fill(now, **SHORT)
    short = _measure(client, now)
    _fill(now, **LONG)
    long = _measure(client, now)
    from workloads.models import MetricRollup

    rows = MetricRollup.objects.count()
    long_history = f"{LONG['minute_days']} d of minute + {LONG['hour_days']} d of hourly rollups"
    print(f"{CLASSES} classes; long history: {long_history} ({rows:,} rows); short: {SHORT['minute_days']} d of each.")
    print("Median server time per request.")
    print(f"{'':32} {'3 d (ms)':>9} {'30 d (ms)':>10} {'ratio':>7}")
    for name in PAGES:
        print(f"{name:32} {short[name]:9.1f} {long[name]:10.1f} {long[name] / short[name]:7.2f}")


if __name__ == "__main__":
    main()
