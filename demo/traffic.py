"""Synthetic traffic for the demo fleet: realistic payloads, a daily shape, bursts, duplicates and
invalid events, so `make run` shows dedup, rejection, retries, dead letters and scaling.

Pure functions over a `random.Random`, so tests can pin a seed. A "demo day" is compressed
(default 20 minutes) so the dashboards show a whole traffic cycle while someone watches.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

WORDS = (
    "invoice contract policy shipment refund audit quarterly revenue customer region storage latency "
    "pipeline retry queue worker schedule budget incident release compliance report summary"
).split()
COUNTRIES = ["de", "fr", "gb", "us", "jp", "br"]
TENANTS = [f"tenant-{n:02d}" for n in range(1, 13)]


@dataclass
class ClassTraffic:
    """How one class's traffic looks: its share of the base rate, when in the day it peaks, and
    whether producers send it in batches."""

    slug: str
    weight: float
    peak_at: float  # fraction of the demo day (0..1) when traffic peaks
    batch_size: int = 1
    poison_rate: float = 0.0  # share of events sent as poison (see make_event)


# Failed attempts count against success-ratio SLOs, so the poison is aimed: document processing
# gets corrupt documents, retried to the last attempt (its SLOs burn and page: the class in
# trouble); indexing and enrichment get a little poison that fails permanently (dead letters in
# their own signatures, within budget); policy evaluation, the critical class, gets none.
DEMO_TRAFFIC = [
    ClassTraffic("document-processing", weight=1.0, peak_at=0.40, poison_rate=0.02),
    ClassTraffic("indexing-pipeline", weight=2.0, peak_at=0.45, batch_size=10, poison_rate=0.02),
    ClassTraffic("batch-enrichment", weight=1.5, peak_at=0.90, batch_size=25, poison_rate=0.006),
    ClassTraffic("policy-evaluation", weight=3.0, peak_at=0.50),
    # The migration demo (demo/migration.py): documents for the legacy Celery
    # pipeline, of which the plan's canary routes 20 % to the Worker Pool class.
    ClassTraffic("legacy-documents", weight=0.6, peak_at=0.40),
    # The staging environment's smaller copies (demo/fleet.py): a trickle of the same.
    ClassTraffic("document-processing-staging", weight=0.2, peak_at=0.40, poison_rate=0.02),
    ClassTraffic("batch-enrichment-staging", weight=0.3, peak_at=0.90, batch_size=5, poison_rate=0.006),
]
STAGING_SUFFIX = "-staging"


def daily_shape(day_fraction: float, peak_at: float) -> float:
    """A smooth day curve between 0.15 (night) and 1.0 (peak)."""
    return 0.15 + 0.85 * (0.5 + 0.5 * math.cos(2 * math.pi * (day_fraction - peak_at)))


@dataclass
class Burst:
    slug: str
    until: float  # monotonic seconds
    factor: float


@dataclass
class TrafficPlan:
    """Decides how many events each class gets in one tick."""

    base_rate: float  # events per second for a weight-1 class at peak
    day_seconds: float = 1200.0
    burst_chance: float = 0.004  # per class per second
    bursts: dict[str, Burst] = field(default_factory=dict)

    def events_this_tick(self, traffic: ClassTraffic, *, elapsed: float, tick: float, rng: random.Random) -> int:
        burst = self.bursts.get(traffic.slug)
        if burst is not None and burst.until <= elapsed:
            del self.bursts[traffic.slug]
            burst = None
        if burst is None and rng.random() < self.burst_chance * tick:
            burst = self.bursts[traffic.slug] = Burst(traffic.slug, elapsed + rng.uniform(15, 40), rng.uniform(4, 10))
        day_fraction = (elapsed % self.day_seconds) / self.day_seconds
        mean = self.base_rate * traffic.weight * daily_shape(day_fraction, traffic.peak_at) * tick
        if burst is not None:
            mean *= burst.factor
        return _poisson(mean, rng)


def _poisson(mean: float, rng: random.Random) -> int:
    if mean <= 0:
        return 0
    if mean > 30:  # normal approximation keeps it cheap for large means
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, product, count = math.exp(-mean), rng.random(), 0
    while product > limit:
        product *= rng.random()
        count += 1
    return count


def _now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def make_event(slug: str, rng: random.Random, *, serial: int, poison: bool = False) -> dict:
    """A valid payload for one of the demo classes (see demo/fleet.py for the schemas).

    A poison event fails in the demo handlers on every attempt: a "poison-..." id (see
    demo/handlers.py), or for indexing a language the index has no analyzer for
    (a permanent error: dead-lettered at once). A staging copy gets its prod class's payloads."""
    slug = slug.removesuffix(STAGING_SUFFIX)
    if slug in ("document-processing", "legacy-documents"):
        sections = rng.randint(1, 6)
        body = "\n\n".join(
            f"# {_sentence(rng, 3).title()}\n{_sentence(rng, rng.randint(20, 120))}" for _ in range(sections)
        )
        return {
            "tenant_id": rng.choice(TENANTS),
            "document_id": f"poison-{serial}" if poison else f"doc-{serial}",
            "revision": rng.randint(1, 4),
            "content_type": rng.choice(["text/plain", "text/html", "application/pdf"]),
            "title": _sentence(rng, 4).title(),
            "content": body,
            "submitted_at": _now_rfc3339(),
            "priority": rng.choice(["low", "normal", "normal", "high"]),
        }
    if slug == "indexing-pipeline":
        return {
            "index": rng.choice(["docs", "tickets", "wiki"]),
            "document_id": f"doc-{rng.randint(1, 5000)}",
            "version": serial,
            "operation": "delete" if rng.random() < 0.05 else "upsert",
            "text": _sentence(rng, rng.randint(10, 60)),
            "language": rng.choice(["ja", "pt"]) if poison else rng.choice(["en", "en", "de", "fr"]),
        }
    if slug == "batch-enrichment":
        return {
            "batch_id": f"batch-{serial // 25}",
            "record_id": f"poison-{serial}" if poison else f"rec-{serial}",
            "country": rng.choice(COUNTRIES),
            "company_name": f"{rng.choice(WORDS).title()} {rng.choice(['GmbH', 'SA', 'Ltd', 'Inc', 'KK'])}",
            "domain": f"{rng.choice(WORDS)}.example",
            "employees": rng.randint(3, 90000),
        }
    if slug == "policy-evaluation":
        return {
            "tenant_id": rng.choice(TENANTS),
            "request_id": f"poison-{serial}" if poison else f"req-{serial}",
            "policy": "subject.role == 'admin' or (subject.age >= 18 and subject.country != 'xx')",
            "subject": {
                "role": rng.choice(["admin", "user", "guest"]),
                "age": rng.randint(12, 80),
                "country": rng.choice(COUNTRIES),
            },
            "requested_at": _now_rfc3339(),
        }
    raise ValueError(f"No demo traffic for class {slug!r}.")


def make_invalid_event(slug: str, rng: random.Random, *, serial: int) -> dict:
    """A payload the class's schema rejects: a required field missing, or null where the schema
    wants a string, an integer or an object."""
    from demo.fleet import DEMO_CLASSES

    slug_of_schema = slug.removesuffix(STAGING_SUFFIX)
    slug_of_schema = "document-processing" if slug_of_schema == "legacy-documents" else slug_of_schema
    schema = next(d["fields"]["payload_schema"] for d in DEMO_CLASSES if d["fields"]["slug"] == slug_of_schema)
    event = make_event(slug, rng, serial=serial)
    field_name = rng.choice(schema["required"])
    if rng.random() < 0.5:
        del event[field_name]
    else:
        event[field_name] = None
    return event
