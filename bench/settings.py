"""The product's production settings plus the bench-only echo endpoint, for gunicorn in the
ingestion and load benchmarks only (the product never serves /bench/echo)."""

from controlplane.settings.base import *  # noqa: F403

ROOT_URLCONF = "bench.echo_urls"
