import json
from datetime import UTC, datetime

import pytest

from demo import handlers as demo_handlers
from demo.fleet import DEMO_SLUGS, seed_demo_fleet
from workloads.models import WorkloadClass, WorkOutcome, WorkResult
from workloads.providers import get_providers
from workloads.providers.base import ATTR_ERROR_TYPE, ATTR_IDEMPOTENCY_KEY, Outcome, ReceivedMessage
from workloads.providers.specs import queue_spec
from workloads.runtime.context import WorkContext
from workloads.runtime.errors import PermanentError
from workloads.runtime.registry import get_handler, registered
from workloads.runtime.worker import Worker, worker_config


def test_a_document_is_parsed_into_words_and_sections():
    html = "<h1>Intro</h1><p>The quick brown fox.</p><script>var x = 1;</script><h2>Details</h2><p>Fox &amp; dog</p>"
    stats = demo_handlers.document_stats(html, "text/html")
    assert (stats["words"], stats["sections"], stats["pages"]) == (8, 2, 1)
    assert stats["top_words"][0] == "fox"
    text = "# Title\nSome words here.\n\n## Part two\nMore words\f## Page two\nEnd"
    stats = demo_handlers.document_stats(text, "text/plain")
    assert (stats["words"], stats["sections"], stats["pages"]) == (11, 3, 2)
    assert demo_handlers.document_stats("", "text/plain")["sections"] == 0


def test_an_index_entry_maps_terms_to_positions():
    entry = demo_handlers.index_entry("The cat sat on the mat; the Cat's hat")
    assert entry == {"cat": [1], "sat": [2], "mat": [5], "cat's": [7], "hat": [8]}


def test_a_record_is_enriched_from_the_lookup_table():
    enriched, tokens = demo_handlers.enrich_record(
        {"record_id": "r1", "country": "de", "company_name": "acme gmbh", "domain": "WWW.Acme.de ", "employees": 120}
    )
    assert enriched["region"] == "EMEA" and enriched["currency"] == "EUR" and enriched["vat_rate"] == 0.19
    assert (enriched["size_band"], enriched["domain"], enriched["tld"]) == ("medium", "acme.de", "de")
    assert enriched["display_name"] == "Acme Gmbh"
    assert tokens == 60 + (9 + 7) // 4


@pytest.mark.parametrize(
    ("policy", "allowed"),
    [
        ('subject.role == "admin"', True),
        ('subject.role == "viewer" or subject.level >= 3 and subject.team in ["ops", "sre"]', True),
        ("not subject.suspended and subject.level > 4", False),
        ("subject.missing == null", True),
        ("1 < subject.level <= 3", True),
    ],
)
def test_policies_are_evaluated(policy, allowed):
    subject = {"role": "admin", "level": 3, "team": "sre", "suspended": False}
    assert demo_handlers.evaluate_policy(policy, subject) is allowed


@pytest.mark.parametrize(
    "policy",
    ["__import__('os').system('true')", "subject.role.upper() == 'X'", "subject.level is 3", "subject.role ==", "x"],
)
def test_a_policy_that_is_not_a_plain_expression_is_a_permanent_error(policy):
    with pytest.raises(PermanentError):
        demo_handlers.evaluate_policy(policy, {"role": "admin", "level": 3})


def test_poison_is_marked_or_chosen_per_unit_and_stays_poison(settings):
    class Context:
        idempotency_key = "acme:doc-1:1"

    settings.DEMO_POISON_RATE = 0.0
    assert demo_handlers.is_poison({"document_id": "poison-1"}, Context())
    assert not demo_handlers.is_poison({"document_id": "doc-1"}, Context())
    settings.DEMO_POISON_RATE = 0.5
    keys = [f"acme:doc-{n}:1" for n in range(400)]
    poisoned = {key for key in keys if demo_handlers._unit_fraction(key) < 0.5}
    assert 150 < len(poisoned) < 250
    assert poisoned == {key for key in keys if demo_handlers._unit_fraction(key) < 0.5}  # same every attempt


PAYLOADS = {
    "document-processing": {
        "tenant_id": "acme",
        "document_id": "doc-1",
        "revision": 2,
        "content_type": "text/plain",
        "content": "# One\nalpha beta\n# Two\ngamma",
    },
    "indexing-pipeline": {
        "index": "docs",
        "document_id": "doc-1",
        "version": 4,
        "operation": "upsert",
        "text": "alpha beta alpha",
    },
    "batch-enrichment": {"batch_id": "b1", "record_id": "r1", "country": "fr", "company_name": "Acme"},
    "policy-evaluation": {
        "tenant_id": "acme",
        "request_id": "req-1",
        "policy": "subject.level >= 2",
        "subject": {"level": 1},
    },
}
SUMMARIES = {
    "document-processing": {"words": 5, "sections": 2},
    "indexing-pipeline": {"terms": 2, "positions": 3, "top_terms": {"alpha": 2, "beta": 1}},
    "batch-enrichment": {"region": "EMEA", "currency": "EUR"},
    "policy-evaluation": {"decision": "deny"},
}


def _message(payload: dict, key: str, attempt: int = 1) -> ReceivedMessage:
    return ReceivedMessage(
        message_id=f"m-{key}-{attempt}",
        ack_id="unused",
        data=json.dumps(payload).encode(),
        attributes={ATTR_IDEMPOTENCY_KEY: key},
        ordering_key="",
        delivery_attempt=attempt,
        publish_time=datetime.now(UTC),
    )


@pytest.fixture
def demo_fleet(db, settings):
    settings.DEMO_TRANSIENT_FAILURE_RATE = 0.0
    settings.DEMO_POISON_RATE = 0.0
    seed_demo_fleet()
    for workload_class in WorkloadClass.objects.filter(slug__in=DEMO_SLUGS):
        get_providers().queue.ensure_resources(queue_spec(workload_class))


def _worker(slug: str) -> Worker:
    workload_class = WorkloadClass.objects.select_related("cost_rates").get(slug=slug)
    return Worker(worker_config(workload_class), handler=get_handler(slug), providers=get_providers())


@pytest.mark.parametrize("slug", DEMO_SLUGS)
def test_each_demo_class_has_a_handler_that_does_its_work(demo_fleet, slug):
    assert set(DEMO_SLUGS) <= set(registered())
    context = WorkContext(
        slug=slug,
        message_id="m-1",
        attempt=1,
        idempotency_key=f"{slug}-key",
        trace_id="",
        deadline=datetime.now(UTC),
        deadline_monotonic=0.0,
    )
    summary = get_handler(slug)(PAYLOADS[slug], context)
    assert SUMMARIES[slug].items() <= summary.items()
    assert context.meter.read()[0] == 1

    assert _worker(slug).handle(_message(PAYLOADS[slug], key=f"{slug}-key")).outcome is Outcome.ACK
    row = WorkResult.objects.get(idempotency_key=f"{slug}-key")
    assert (row.outcome, row.records) == (WorkOutcome.SUCCEEDED, 1)
    if slug == "batch-enrichment":
        assert row.tokens > 0 and row.cost_units > 0


def test_demo_poison_is_retried_until_the_last_attempt_then_dead_lettered(demo_fleet):
    worker = _worker("document-processing")  # 5 attempts; its parse error is not classified
    payload = {**PAYLOADS["document-processing"], "document_id": "poison-9"}
    for attempt in range(1, 5):
        assert worker.handle(_message(payload, key="poison-key", attempt=attempt)).outcome is Outcome.NACK
    assert worker.handle(_message(payload, key="poison-key", attempt=5)).outcome is Outcome.ACK
    outcomes = list(WorkResult.objects.order_by("pk").values_list("outcome", "error_type"))
    error = "demo.handlers.DocumentCorrupt"
    assert outcomes == [(WorkOutcome.FAILED, error)] * 4 + [(WorkOutcome.DEAD_LETTERED, error)]
    spec = queue_spec(WorkloadClass.objects.get(slug="document-processing"))
    [dead] = get_providers().queue.peek_dead_letters(spec, max_messages=5)
    assert dead.attributes[ATTR_ERROR_TYPE] == error


def test_demo_poison_of_batch_enrichment_is_permanent(demo_fleet):
    worker = _worker("batch-enrichment")
    payload = {**PAYLOADS["batch-enrichment"], "record_id": "poison-r2"}
    assert worker.handle(_message(payload, key="poison-enrich")).outcome is Outcome.ACK
    assert WorkResult.objects.get().outcome == WorkOutcome.DEAD_LETTERED
