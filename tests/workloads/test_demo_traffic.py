import random
import time
from datetime import UTC, datetime

import pytest
from django.core.management import call_command

from demo import handlers as demo_handlers  # noqa: F401 (registers the demo handlers)
from demo.fleet import DEMO_CLASSES
from demo.traffic import DEMO_TRAFFIC, TrafficPlan, daily_shape, make_event, make_invalid_event
from workloads.domain.payloads import normalize_and_validate
from workloads.models import IdempotencyRecord, WorkloadClass
from workloads.providers import get_providers
from workloads.providers.local.models import LocalWorkerPool
from workloads.providers.specs import queue_spec
from workloads.runtime.context import WorkContext
from workloads.runtime.registry import get_handler

SCHEMAS = {d["fields"]["slug"]: d["fields"]["payload_schema"] for d in DEMO_CLASSES}


@pytest.mark.parametrize("slug", sorted(SCHEMAS))
def test_generated_events_match_their_class_schema_and_invalid_ones_do_not(slug):
    rng = random.Random(7)
    for serial in range(200):
        assert normalize_and_validate(make_event(slug, rng, serial=serial), SCHEMAS[slug]).ok
        assert normalize_and_validate(make_event(slug, rng, serial=serial, poison=True), SCHEMAS[slug]).ok
        assert not normalize_and_validate(make_invalid_event(slug, rng, serial=serial), SCHEMAS[slug]).ok


def test_the_daily_shape_peaks_where_asked_and_never_stops():
    assert daily_shape(0.4, 0.4) == pytest.approx(1.0)
    assert daily_shape(0.9, 0.4) == pytest.approx(0.15)
    assert all(0.15 <= daily_shape(x / 100, 0.3) <= 1.0 for x in range(101))


def test_the_plan_averages_to_its_rate_and_bursts_raise_it():
    rng = random.Random(3)
    quiet = TrafficPlan(base_rate=5, day_seconds=1e9, burst_chance=0)
    spec = DEMO_TRAFFIC[0]
    total = sum(quiet.events_this_tick(spec, elapsed=0, tick=1, rng=rng) for _ in range(2000))
    expected = 5 * spec.weight * daily_shape(0, spec.peak_at) * 2000
    assert total == pytest.approx(expected, rel=0.1)
    bursty = TrafficPlan(base_rate=5, day_seconds=1e9, burst_chance=1000)
    burst_total = sum(bursty.events_this_tick(spec, elapsed=i, tick=1, rng=rng) for i in range(200))
    assert burst_total > 3 * expected / 10


def test_provision_creates_queues_and_pools_once(db, capsys):
    call_command("seed_demo")
    capsys.readouterr()
    call_command("provision")
    out = capsys.readouterr().out
    assert "document-processing: ready (pool at 1 instances, created 4)" in out
    pools = dict(LocalWorkerPool.objects.values_list("slug", "instance_count"))
    assert pools == {
        "document-processing": 1,
        "indexing-pipeline": 1,
        "batch-enrichment": 0,
        "policy-evaluation": 2,
        "documents-pool": 1,  # the migration demo's Worker Pool side; its legacy side has no pool
        "document-processing-staging": 0,  # staging's copies start at zero; work scales them up
        "batch-enrichment-staging": 0,
    }
    call_command("provision")
    assert "created" not in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_generate_traffic_posts_through_the_real_api(live_server, capsys):
    call_command("seed_demo")
    call_command("provision")
    capsys.readouterr()
    call_command(
        "generate_traffic",
        "--url",
        live_server.url,
        "--rate",
        "3",
        "--duration",
        "2.5",
        "--seed",
        "1",
        "--invalid-rate",
        "0.2",
        "--duplicate-rate",
        "0.2",
    )
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    counts = dict(part.split(" ") for part in summary.split(", "))
    assert int(counts["accepted"]) > 5 and int(counts["rejected"]) > 0
    assert "errors" not in counts
    assert IdempotencyRecord.objects.count() == int(counts["accepted"])
    slug = "policy-evaluation"
    waiting = get_providers().queue.pull(
        queue_spec(WorkloadClass.objects.get(slug=slug)), max_messages=1000, timeout=0.5
    )
    assert waiting  # the events are in the class's queue


@pytest.mark.parametrize("slug", [t.slug for t in DEMO_TRAFFIC if t.poison_rate])
def test_poison_events_fail_in_their_demo_handler_and_the_others_succeed(slug, settings):
    settings.DEMO_TRANSIENT_FAILURE_RATE = 0.0
    settings.DEMO_POISON_RATE = 0.0
    handler = get_handler(slug)
    rng = random.Random(11)

    def run(event):
        context = WorkContext(
            slug=slug,
            message_id="m-1",
            attempt=1,
            idempotency_key=f"key-{rng.random()}",
            trace_id="t",
            deadline=datetime.now(UTC),
            deadline_monotonic=time.monotonic() + 30,
        )
        payload = normalize_and_validate(event, SCHEMAS[slug.removesuffix("-staging")]).payload
        return handler(payload, context)

    for serial in range(20):
        assert run(make_event(slug, rng, serial=serial)) is not None
        with pytest.raises(Exception) as failure:
            run(make_event(slug, rng, serial=serial, poison=True))
        assert "transient" not in type(failure.value).__name__.lower()  # fails the same way every time
