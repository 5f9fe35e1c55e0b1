"""A group re-checks the cached lookups of all its requests (workloads/services/ingestion_lookups.py)
in one statement before it claims anything, and a stale one fails only its own request."""

from __future__ import annotations

import hashlib

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from controlplane.roles import Role
from tests.factories import WorkloadClassFactory
from workloads.models import IdempotencyRecord
from workloads.providers import get_providers
from workloads.providers.specs import queue_spec
from workloads.services.ingestion_claims import Claim, claim_and_publish
from workloads.services.ingestion_events import Candidate, Status
from workloads.services.ingestion_lookups import Guard, StaleLookup, token_authenticate, workload_class_for_ingestion
from workloads.services.tokens import api_token_issue


def _candidate(key: str) -> Candidate:
    data = f'{{"key":"{key}"}}'.encode()
    return Candidate(0, {"key": key}, key, "", hashlib.sha256(data).hexdigest(), data, "trace", timezone.now())


def test_one_statement_rechecks_a_group_and_a_stale_lookup_fails_only_its_request(db, make_user):
    workload_class = WorkloadClassFactory(slug="guarded")
    get_providers().queue.ensure_resources(queue_spec(workload_class))
    _token, raw = api_token_issue(actor=None, user=make_user("guarded", Role.VIEWER), name="g", scopes=["ingest:*"])
    token, token_stamp = token_authenticate(raw)
    cached_class, _paused, class_stamps = workload_class_for_ingestion("guarded")
    fresh = Guard(token=token_stamp, classes=class_stamps)
    claims = [
        Claim(cached_class, cached_class, [_candidate("a")], guard=fresh),
        Claim(cached_class, cached_class, [_candidate("b")], guard=Guard(token=(token.pk, "what it was"))),
        Claim(cached_class, cached_class, [_candidate("c")], guard=Guard(classes=((cached_class.pk, "changed"),))),
        Claim(cached_class, cached_class, [_candidate("d")], guard=fresh),
    ]
    with CaptureQueriesContext(connection) as queries:
        claim_and_publish(claims)
    checks = [q["sql"] for q in queries.captured_queries if "'token' AS kind" in q["sql"]]
    assert len(checks) == 1
    assert [type(claim.error) for claim in claims] == [type(None), StaleLookup, StaleLookup, type(None)]
    assert [claim.results[0].status for claim in (claims[0], claims[3])] == [Status.ACCEPTED, Status.ACCEPTED]
    assert claims[1].results == {} and claims[2].results == {}
    assert sorted(IdempotencyRecord.objects.values_list("key", flat=True)) == ["a", "d"]


@pytest.mark.parametrize("cached", [True, False])
def test_a_group_without_cached_lookups_checks_nothing(db, cached):
    workload_class = WorkloadClassFactory(slug="unguarded")
    get_providers().queue.ensure_resources(queue_spec(workload_class))
    guard = Guard(classes=workload_class_for_ingestion("unguarded")[2]) if cached else None
    claim = Claim(workload_class, workload_class, [_candidate("a")], guard=guard)
    with CaptureQueriesContext(connection) as queries:
        claim_and_publish([claim])
    checks = [q["sql"] for q in queries.captured_queries if "'class'" in q["sql"]]
    assert len(checks) == (1 if cached else 0)
    assert claim.error is None and claim.results[0].status == Status.ACCEPTED
