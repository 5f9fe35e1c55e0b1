"""Load without loss: CLIENTS concurrent clients each post EVENTS_PER_CLIENT events over HTTP to a
live server, a known share of them repeats of events other clients (or the same one) also send
(same key, same payload), so duplicates race their originals. Afterwards the class's queue,
leased empty through the Queue port, holds exactly the unique events: none lost, none twice."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest
import requests

from controlplane.roles import Role
from tests.factories import WorkloadClassFactory
from workloads.providers import get_providers
from workloads.providers.base import ATTR_IDEMPOTENCY_KEY
from workloads.providers.specs import queue_spec
from workloads.services.tokens import api_token_issue

CLIENTS = 8
EVENTS_PER_CLIENT = 25
REPEATS_PER_CLIENT = 5  # of its EVENTS_PER_CLIENT requests, this many resend an event already sent


def _event(client: int, n: int) -> dict:
    return {"tenant_id": f"tenant-{client}", "document_id": f"doc-{n}", "revision": 1, "note": f"from {client}"}


def _key(event: dict) -> str:
    return f"{event['tenant_id']}:{event['document_id']}:{event['revision']}"


def _plans() -> list[list[dict]]:
    """What each client sends, in order: its own new events, with repeats (its own or another
    client's, same payload) mixed in. Seeded, so a failure can be replayed."""
    rng = random.Random(9)
    fresh = EVENTS_PER_CLIENT - REPEATS_PER_CLIENT
    own = [[_event(c, n) for n in range(fresh)] for c in range(CLIENTS)]
    plans = []
    for c in range(CLIENTS):
        repeats = [dict(rng.choice(own[rng.randrange(CLIENTS)])) for _ in range(REPEATS_PER_CLIENT)]
        plan = own[c] + repeats
        rng.shuffle(plan)
        plans.append(plan)
    return plans


def _lease_everything(workload_class) -> list:
    queue, spec = get_providers().queue, queue_spec(workload_class)
    leased = []
    while batch := queue.pull(spec, max_messages=100, timeout=0.5):
        leased += batch
    return leased


@pytest.mark.django_db(transaction=True)
def test_concurrent_clients_with_duplicates_queue_exactly_the_unique_events(live_server, make_user):
    workload_class = WorkloadClassFactory(slug="under-load")
    get_providers().queue.ensure_resources(queue_spec(workload_class))
    _token, raw = api_token_issue(actor=None, user=make_user("load-bot", Role.VIEWER), name="load", scopes=["ingest:*"])
    url = f"{live_server.url}/api/v1/classes/under-load/events"
    plans = _plans()
    answers: list[tuple[str, int, dict]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(CLIENTS)

    def client(plan: list[dict]) -> None:
        try:
            with requests.Session() as session:
                session.headers["Authorization"] = f"Bearer {raw}"
                start.wait(timeout=30)
                for event in plan:
                    response = session.post(url, json=event, timeout=30)
                    answers.append((_key(event), response.status_code, response.json()))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(plan,)) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors

    unique = {_key(event) for plan in plans for event in plan}
    assert len(answers) == CLIENTS * EVENTS_PER_CLIENT
    assert len(unique) == CLIENTS * (EVENTS_PER_CLIENT - REPEATS_PER_CLIENT)
    assert Counter(status for _, status, _ in answers) == {202: len(unique), 200: len(answers) - len(unique)}
    accepted = {key: body["message_id"] for key, status, body in answers if status == 202}
    assert set(accepted) == unique
    # Every duplicate got the original's receipt, whichever request won the race.
    repeats = [(key, body) for key, status, body in answers if status == 200]
    assert all(body["duplicate"] and body["message_id"] == accepted[key] for key, body in repeats)

    leased = _lease_everything(workload_class)
    keys = Counter(message.attributes[ATTR_IDEMPOTENCY_KEY] for message in leased)
    assert set(keys) == unique and set(keys.values()) == {1}
    assert {message.message_id for message in leased} == set(accepted.values())
