"""What every benchmark shares: results and targets, the bench database and Django in-process,
workload classes to measure with, gunicorn serving the product, and Google's Pub/Sub emulator.

Benchmarks run Django in this process on their own PostgreSQL database (never the test database,
never var/), dropped and recreated at the start of each run. Nothing here is imported by the product.
"""

from __future__ import annotations

import atexit
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tests.process_groups import stop_process_group

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/controlplane_bench"
BENCH_PROJECT = "bench-project"
# Gunicorn as the Procfile runs it: WEB_CONCURRENCY workers (default 2) with 4 threads each.
GUNICORN_WORKERS = int(os.environ.get("WEB_CONCURRENCY", "2"))
GUNICORN_THREADS = 4


# --- results --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """What a result should show: `ratio >= 0.6`, or a bound on the figure itself (`figure <= 150`)."""

    op: str  # ">=", "<=", "<" or "=="
    value: float
    on: str = "ratio"  # "ratio" or "figure"

    def holds(self, number: float) -> bool:
        if self.op == ">=":
            return number >= self.value
        if self.op == "<=":
            return number <= self.value
        if self.op == "<":
            return number < self.value
        return abs(number - self.value) < 1e-9

    def describe(self, unit: str) -> str:
        if self.on == "ratio":
            return f"ratio {self.op} {self.value:g}"
        return f"{self.op} {self.value:g} {unit}".strip()


@dataclass
class Result:
    name: str
    figure: float | None
    unit: str
    baseline: float | None = None
    baseline_name: str = ""  # what the baseline is, for the JSON file and the README
    baseline_unit: str = ""  # when it differs from the figure's
    target: Target | None = None
    note: str = ""
    skipped: str = ""  # why the benchmark could not run here (e.g. no emulator)
    error: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.figure is None or not self.baseline:
            return None
        return self.figure / self.baseline

    @property
    def verdict(self) -> str:
        if self.error:
            return "ERROR"
        if self.skipped:
            return "SKIP"
        if self.target is None:
            return "-"
        number = self.ratio if self.target.on == "ratio" else self.figure
        if number is None:
            return "FAIL"
        return "PASS" if self.target.holds(number) else "FAIL"

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "figure": self.figure,
            "unit": self.unit,
            "baseline": self.baseline,
            "baseline_name": self.baseline_name,
            "baseline_unit": self.baseline_unit or self.unit,
            "ratio": self.ratio,
            "target": self.target.describe(self.unit) if self.target else "",
            "verdict": self.verdict,
            "note": self.note,
            "skipped": self.skipped,
            "error": self.error,
            "extra": self.extra,
        }


def median(values) -> float:
    return statistics.median(values) if values else 0.0


# --- the bench database and Django ------------------------------------------------------------------
def database_url(name: str | None = None) -> str:
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    if name:
        parts = urlsplit(url)
        url = parts._replace(path=f"/{name}").geturl()
    return url


def _database_name(url: str) -> str:
    name = urlsplit(url).path.lstrip("/")
    # The run drops this database: refuse anything that is not plainly a benchmark's own.
    if "bench" not in name:
        raise SystemExit(f"Refusing to drop and recreate {name!r}: a bench database name must contain 'bench'.")
    return name


def _maintenance_connection(url: str):
    import psycopg

    parts = urlsplit(url)
    return psycopg.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password,
        dbname="postgres",
        autocommit=True,
    )


def recreate_database(url: str, *, template: str = "") -> None:
    """Drop and create the database of `url`: empty, or a copy of the database `template`
    (CREATE DATABASE ... TEMPLATE: a file copy; the template must have no other session)."""
    from psycopg import sql

    name = _database_name(url)
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with _maintenance_connection(url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(create)


def drop_database(url: str) -> None:
    from django.db import connections
    from psycopg import sql

    connections.close_all()
    name = _database_name(url)
    with _maintenance_connection(url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def bench_environment(url: str, static_root: str) -> dict[str, str]:
    """The environment of the product as the benchmarks run it, in-process and under gunicorn:
    production settings (DEBUG off) on the bench database and the local provider."""
    return {
        "DJANGO_SETTINGS_MODULE": "controlplane.settings.base",
        "DATABASE_URL": url,
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGH",
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "SECURE_SSL_REDIRECT": "0",
        "CONTROLPLANE_PROVIDER": "local",
        "GOOGLE_CLOUD_PROJECT": BENCH_PROJECT,
        # Nothing is enqueued for real (actions run in-process); keeps var/celery untouched.
        "CELERY_BROKER_URL": "memory://",
        "STATIC_ROOT": static_root,
        "LOG_LEVEL": "error",
    }


_static_collected = False


def setup_django(url: str) -> None:
    """Configure this process for the bench database and start Django (once per process)."""
    static_root = tempfile.mkdtemp(prefix="controlplane-bench-static-")
    atexit.register(_remove_tree, static_root)
    os.environ.update(bench_environment(url, static_root))
    os.environ.pop("PUBSUB_EMULATOR_HOST", None)  # the benchmarks start their own emulator
    if str(BASE_DIR) not in sys.path:
        sys.path.insert(0, str(BASE_DIR))
    import django

    django.setup()


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def collect_static() -> None:
    """Pages render {% static %} through the manifest storage with DEBUG off, as in production.

    The files and their manifest are collected by Django's manifest storage, the one whitenoise's
    production storage builds on: the pages then look up the same hashed names in the same
    manifest. What whitenoise adds, a gzip copy of every file, serves files, which no benchmark
    does, and cost most of the collection (measured: 3.1 CPU-s and 5.1 s with it, 0.6 CPU-s and
    1.2 s without)."""
    global _static_collected
    if not _static_collected:
        from django.conf import settings
        from django.core.management import call_command
        from django.test import override_settings

        manifest_only = {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"}
        with override_settings(STORAGES={**settings.STORAGES, "staticfiles": manifest_only}):
            call_command("collectstatic", interactive=False, verbosity=0)
        _static_collected = True


def _remove_tree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def reset_tables() -> None:
    """Empty every table the benchmarks fill, so each starts from the same state (TRUNCATE is
    instant where a cascading delete of millions of rollups is not)."""
    from django.db import connection

    from workloads.models import WorkloadClass
    from workloads.providers.local.models import LocalTopic, LocalWorkerPool, LocalWorkerReport

    tables = [m._meta.db_table for m in (WorkloadClass, LocalTopic, LocalWorkerPool, LocalWorkerReport)]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


# --- workload classes --------------------------------------------------------------------------------
DOCUMENT_SCHEMA = {
    "type": "object",
    "required": ["tenant_id", "document_id", "revision"],
    "properties": {
        "tenant_id": {"type": "string", "minLength": 1},
        "document_id": {"type": "string", "minLength": 1},
        "revision": {"type": "integer", "minimum": 1},
        "content_type": {"type": "string", "enum": ["text/plain", "application/pdf"], "default": "text/plain"},
    },
}


def make_classes(count: int, *, prefix: str = "bench", slos: bool = True, **fields) -> list:
    """`count` classes named <prefix>-000..., with the default resource names and, unless told
    otherwise, a queue-age, a completion-latency and a success-ratio SLO each."""
    from decimal import Decimal

    from workloads.models import CostRates, Slo, SloKind, WorkloadClass
    from workloads.models.environments import default_environment_pk

    rates, _ = CostRates.objects.get_or_create(name="bench", defaults={"vcpu_second": Decimal("0.000018")})
    # bulk_create skips the clean that fills in the default environment (the bench's project).
    fields.setdefault("environment_id", default_environment_pk())
    classes = []
    for n in range(count):
        wc = WorkloadClass(
            slug=f"{prefix}-{n:03d}",
            name=f"{prefix.title()} {n}",
            owner_team=f"team-{n % 7}",
            payload_schema=DOCUMENT_SCHEMA,
            idempotency_key_template="{tenant_id}:{document_id}:{revision}",
            cost_rates=rates,
            **fields,
        )
        wc.fill_default_resource_names()
        classes.append(wc)
    classes = WorkloadClass.objects.bulk_create(classes)
    if slos:
        Slo.objects.bulk_create(
            [
                slo
                for wc in classes
                for slo in (
                    Slo(workload_class=wc, kind=SloKind.SUCCESS_RATIO, target_percent=Decimal("99")),
                    Slo(
                        workload_class=wc,
                        kind=SloKind.QUEUE_AGE,
                        percentile=95,
                        threshold_seconds=60,
                        target_percent=Decimal("99"),
                    ),
                    Slo(
                        workload_class=wc,
                        kind=SloKind.COMPLETION_LATENCY,
                        percentile=95,
                        threshold_seconds=2,
                        target_percent=Decimal("99"),
                    ),
                )
            ]
        )
    return classes


def ingest_token(*, username: str = "bench-producer") -> str:
    """An ingest-scoped API token (the way producers authenticate), as the raw bearer text."""
    from django.contrib.auth import get_user_model

    from controlplane.roles import Role
    from workloads.services.tokens import api_token_issue
    from workloads.services.users import user_create

    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        user = user_create(actor=None, username=username, role=Role.VIEWER, password=secrets.token_urlsafe(24))
    _, raw = api_token_issue(actor=None, user=user, name="bench ingestion", scopes=["ingest:*"])
    return raw


# --- processes ------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """The product under gunicorn with the Procfile's worker and thread settings, plus the bench-only
    echo endpoint (`bench.settings` = production settings + `bench.echo_urls`), on a free loopback
    port, in its own process group so stop() ends the master and its workers together."""

    def __init__(self, *, env: dict[str, str] | None = None, startup_timeout: float = 60.0):
        self.port = free_port()
        self.host = "127.0.0.1"
        self._log = tempfile.TemporaryFile()
        environment = {**os.environ, **(env or {}), "DJANGO_SETTINGS_MODULE": "bench.settings"}
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BASE_DIR), environment.get("PYTHONPATH")]))
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "controlplane.wsgi",
                "--bind",
                f"{self.host}:{self.port}",
                "--workers",
                str(GUNICORN_WORKERS),
                "--threads",
                str(GUNICORN_THREADS),
                "--graceful-timeout",
                "10",
                "--log-level",
                "warning",
            ],
            cwd=BASE_DIR,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        atexit.register(self.stop)
        deadline = time.monotonic() + startup_timeout
        while True:
            if self._process.poll() is not None or time.monotonic() > deadline:
                output = self.output()
                self.stop()
                raise RuntimeError(f"gunicorn did not start:\n{output[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://{self.host}:{self.port}/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.2)

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self) -> None:
        stop_process_group(self._process, grace_seconds=20)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


_emulator = None
_emulator_missing = ""


def pubsub_emulator():
    """Google's Pub/Sub emulator, started once per run with the test suite's launcher; None (and
    `emulator_missing()` says why) where it is not installed."""
    global _emulator, _emulator_missing
    if _emulator is None and not _emulator_missing:
        from tests.contract.fakes.emulator import MISSING, PubSubEmulator, find_emulator

        binary = find_emulator()
        if binary is None:
            _emulator_missing = MISSING
            return None
        data_dir = Path(tempfile.mkdtemp(prefix="controlplane-bench-pubsub-"))
        atexit.register(_remove_tree, str(data_dir))
        _emulator = PubSubEmulator(binary, data_dir)
        atexit.register(_emulator.stop)
    return _emulator


def emulator_missing() -> str:
    return _emulator_missing


def stop_emulator() -> None:
    global _emulator, _queue
    _queue = None
    if _emulator is not None:
        _emulator.stop()
        _emulator = None


_queue = None


def emulator_queue():
    """A PubSubQueue on the emulator, its clients built the way production builds them (once per run)."""
    global _queue
    emulator = pubsub_emulator()
    if emulator is None:
        return None
    if _queue is None:
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
        from workloads.providers.gcp import pubsub_clients
        from workloads.providers.gcp.pubsub import PubSubQueue

        publisher, ordered_publisher, subscriber = pubsub_clients()
        _queue = PubSubQueue(publisher=publisher, ordered_publisher=ordered_publisher, subscriber=subscriber)
    return _queue


def gcp_server_env() -> dict[str, str]:
    """Gunicorn's environment for the GCP provider on the emulator. Ingestion only touches Pub/Sub;
    the Cloud Run and Monitoring clients are still built at start-up, so they get a loopback
    endpoint (gRPC channels connect lazily, and nothing calls them) instead of looking for
    Google credentials."""
    emulator = pubsub_emulator()
    return {
        "CONTROLPLANE_PROVIDER": "gcp",
        "GOOGLE_CLOUD_PROJECT": BENCH_PROJECT,
        "PUBSUB_EMULATOR_HOST": emulator.host,
        "CLOUD_RUN_ENDPOINT": f"127.0.0.1:{free_port()}",
        "CLOUD_MONITORING_ENDPOINT": f"127.0.0.1:{free_port()}",
    }
