"""schemathesis against the OpenAPI schema: every operation, generated inputs (valid ones from the
schema and its examples, and invalid ones), called in-process through WSGI with an admin's
bearer token. Checks: no 5xx, every status code documented, the content type documented, and the
body matching the documented schema.

Bounded for CI (FUZZ_MAX_EXAMPLES per operation, derandomized); `python -m bench.fuzz_api` runs
the same test with many more examples, a random seed and schemathesis' coverage phase.

Path parameters are steered to real objects most of the time (a generated id or slug is mapped
onto one that exists), so the operations' deeper code runs, not only their 404.

A second test runs sequences of calls (schemathesis' stateful phase): it follows the links that
schemathesis infers from the schema (the name, id or slug one answer returns, passed on to the
operations that take it: create a cost rate, then read, change or delete it) and also checks that
a created object can be read and a deleted one cannot. Measured: CI's 15 sequences make ~160 calls
and rarely chain a create or a delete (most generated bodies fail validation), so in CI this is
mostly the per-operation checks over sequences; the chained checks bite in the long run (its
random runs of 150 and 400 sequences found the token case below; derandomized runs of up to 100
did not). tests/api/test_lifecycles.py checks create-read-delete-read deterministically.
"""

from __future__ import annotations

import os
import zlib

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)

from controlplane.roles import Role
from tests.callers import user_with_role
from tests.shared_rows import shared_rows
from tests.workloads.deadletter_helpers import dead_letter_row, make_class
from tests.workloads.pools import run_pending
from workloads.models import Action, AuditEvent, DeadLetterStatus, TriageRule
from workloads.providers import get_providers
from workloads.providers.specs import pool_spec
from workloads.services.deadletters import DeadLetterFilter, replay_request
from workloads.services.pauses import pool_pause
from workloads.services.tokens import api_token_issue

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "15"))
DERANDOMIZE = os.environ.get("FUZZ_SEED", "") == ""
# The coverage phase (boundary and type-violating values for every parameter, about a hundred
# requests for a big body) is for the long run: CI keeps to the examples and the fuzzing phases.
COVERAGE = os.environ.get("FUZZ_COVERAGE", "") == "1"

CONFIG = SchemathesisConfig.from_dict(
    {
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": DERANDOMIZE, "database": "none"},
        # Stateful on: it makes schemathesis infer the links the sequence test follows.
        "phases": {"stateful": {"enabled": True}, "coverage": {"enabled": COVERAGE}},
        **({"seed": int(os.environ["FUZZ_SEED"])} if not DERANDOMIZE else {}),
    }
)
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application(), config=CONFIG)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def use_after_free_but_revoked_tokens(ctx, response, case):
    """A deleted object must be gone, except a token: DELETE revokes it and it stays readable,
    marked revoked, for the audit trail (as the tokens endpoint documents)."""
    if case.path.startswith("/api/v1/tokens/"):
        return None
    return use_after_free(ctx, response, case)


STATEFUL_CHECKS = [*CHECKS, use_after_free_but_revoked_tokens, ensure_resource_availability]
STATEFUL_STEPS = 10  # calls per sequence at most

SLUG = "fuzz-class"
RATES = "fuzz-rates"


@pytest.fixture
def wsgi_keeps_the_test_connection():
    """The WSGI handler closes the database connection after each request (Django's test client
    turns that off, schemathesis' WSGI client does not): it is the test's own transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(scope="module")
def shared_fuzz_world(django_db_setup, django_db_blocker):
    """One of everything the API can show, and the ids each path parameter can point at. Built once
    for the module's tests (tests/shared_rows.py): what a test's generated calls change (a class
    deleted, a token revoked, a rule edited) is rolled back with the test's own savepoint, so each
    operation's examples still start from this world, as when it was built for each test."""
    with shared_rows(django_db_blocker):
        admin = user_with_role("fuzz-admin", Role.ADMIN)
        queue = get_providers().queue
        docs = make_class(queue, SLUG, tier="deferrable")
        docs.cost_rates.name = RATES
        docs.cost_rates.save()
        get_providers().pools.ensure(pool_spec(docs), initial_instances=2)
        other = make_class(queue, "fuzz-other")

        rule = TriageRule.objects.create(name="noise", error_signature="sig-noise", action="hold")
        rows = [
            dead_letter_row(docs),
            dead_letter_row(docs, error_signature="sig-noise", status=DeadLetterStatus.HELD, triage_rule=rule),
            dead_letter_row(other, payload="not json {", error_signature="sig-bad-json"),
        ]
        replay = replay_request(actor=admin, selection=DeadLetterFilter(workload_class=docs, ids=(rows[0].pk,)))
        pool_pause(actor=admin, workload_class=docs, reason="fuzzing")
        run_pending()  # actions with steps, results and a finished state
        victim, _ = api_token_issue(actor=admin, user=admin, name="victim", scopes=["read"])
        _token, raw = api_token_issue(actor=None, user=admin, name="fuzz", scopes=["*"])
        ids = {
            "/api/v1/actions/": list(Action.objects.values_list("pk", flat=True)),
            "/api/v1/audit-events/": list(AuditEvent.objects.values_list("pk", flat=True)[:5]),
            "/api/v1/dead-letters/": [row.pk for row in rows],
            "/api/v1/replays/": [replay.pk],
            "/api/v1/tokens/": [victim.pk],  # never the token the fuzzer authenticates with
            "/api/v1/triage-rules/": [rule.pk],
        }
        yield {"headers": {"Authorization": f"Bearer {raw}"}, "ids": ids}


@pytest.fixture
def fuzz_world(shared_fuzz_world, db, wsgi_keeps_the_test_connection):
    return shared_fuzz_world


def _steer(case, ids: dict[str, list[int]]) -> None:
    """Point three in four generated path parameters at real objects (deterministically)."""
    parameters = case.path_parameters or {}
    for name, value in list(parameters.items()):
        pick = zlib.crc32(repr(value).encode())
        if pick % 4 == 0:
            continue
        if name == "slug":
            parameters[name] = SLUG
        elif name == "name":
            parameters[name] = RATES
        elif name == "id":
            prefix = next((p for p in ids if case.path.startswith(p)), None)
            if prefix and ids[prefix]:
                parameters[name] = ids[prefix][pick % len(ids[prefix])]


@schema.parametrize()
@settings(suppress_health_check=list(HealthCheck), deadline=None)
def test_every_operation_answers_as_documented(case, fuzz_world):
    _steer(case, fuzz_world["ids"])
    case.call_and_validate(headers=fuzz_world["headers"], checks=CHECKS)


def _workflow(headers: dict[str, str]):
    """The state machine schemathesis builds from the inferred links, authenticated, with each
    sequence rolled back at its end: every sequence starts from the same world, so hypothesis
    can replay and shrink a failing one (its inputs depend on what earlier calls returned)."""

    class Workflow(schema.as_state_machine()):
        def setup(self):
            super().setup()
            self._before = transaction.savepoint()

        def teardown(self):
            transaction.savepoint_rollback(self._before)
            super().teardown()

        def get_call_kwargs(self, case):
            return {"headers": headers}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=STATEFUL_CHECKS, recorder=self.recorder)

    return Workflow


def test_sequences_of_operations_answer_as_documented(fuzz_world):
    workflow = _workflow(fuzz_world["headers"])
    assert workflow.bundles, "schemathesis inferred no links from the schema: there is nothing to chain"
    workflow.run(
        settings=settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=STATEFUL_STEPS,
            derandomize=DERANDOMIZE,
            database=None,
            print_blob=True,  # a failing sequence of the long (random) run can be replayed
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )
