"""The one retry-and-explain policy of the GCP adapters (workloads.providers.gcp.errors)."""

import pytest
from google.api_core import exceptions as gexc

from workloads.providers.base import ProviderError
from workloads.providers.gcp.errors import Backoff, call_with_retry

POOL = "projects/p/locations/us-central1/workerPools/render"


class Flaky:
    """Raises the given errors in turn, then returns "ok"."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


BACKOFF = Backoff(initial=0.5, maximum=2.0, deadline=60.0)


def _call(fn, *, backoff=BACKOFF, sleeps=None):
    return call_with_retry(
        fn,
        what="scale the worker pool",
        resource=POOL,
        role="roles/run.developer",
        backoff=backoff,
        sleep=(sleeps.append if sleeps is not None else lambda seconds: None),
    )


@pytest.mark.parametrize(
    "error",
    [
        gexc.ServiceUnavailable("down"),
        gexc.DeadlineExceeded("slow"),
        gexc.ResourceExhausted("quota"),
        gexc.Aborted("conflict"),
    ],
)
def test_it_retries_each_transient_code_until_success(error):
    flaky = Flaky(error, error)
    sleeps = []
    assert _call(flaky, sleeps=sleeps) == "ok"
    assert flaky.calls == 3
    assert len(sleeps) == 2


def test_it_backs_off_exponentially_with_full_jitter():
    sleeps = []
    _call(Flaky(*[gexc.ServiceUnavailable("down")] * 6), sleeps=sleeps)
    caps = [min(2.0, 0.5 * 2**attempt) for attempt in range(6)]  # 0.5, 1, 2, 2, 2, 2
    assert all(0 <= slept <= cap for slept, cap in zip(sleeps, caps, strict=True))
    assert len(set(sleeps)) > 1  # jittered, not a fixed schedule


def test_a_transient_error_that_outlasts_the_deadline_is_a_transient_provider_error():
    always = Flaky(*[gexc.ServiceUnavailable("backend down")] * 1000)
    with pytest.raises(ProviderError) as caught:
        call_with_retry(
            always,
            what="scale the worker pool",
            resource=POOL,
            role="roles/run.developer",
            backoff=Backoff(initial=0.01, maximum=0.02, deadline=0.2),
        )
    error = caught.value
    assert not error.permanent
    assert error.code == "UNAVAILABLE"
    assert always.calls > 2
    assert POOL in error.message and "backend down" in error.message


def test_permission_denied_is_permanent_names_the_role_and_resource_and_is_not_retried():
    denied = Flaky(gexc.PermissionDenied("Permission 'run.workerpools.update' denied"))
    with pytest.raises(ProviderError) as caught:
        _call(denied)
    error = caught.value
    assert error.permanent and error.code == "PERMISSION_DENIED" and error.resource == POOL
    assert "Grant its service account roles/run.developer on " + POOL in error.message
    assert "run.workerpools.update" in error.message  # Google's own words are kept
    assert denied.calls == 1


@pytest.mark.parametrize(
    ("error", "code", "words"),
    [
        (gexc.NotFound("no such pool"), "NOT_FOUND", "does not exist"),
        (gexc.InvalidArgument("count too large"), "INVALID_ARGUMENT", "Fix the workload class settings"),
        (gexc.FailedPrecondition("revision failed"), "FAILED_PRECONDITION", "revision failed"),
        (gexc.Unauthenticated("no token"), "UNAUTHENTICATED", "Application Default Credentials"),
    ],
)
def test_other_client_errors_are_permanent_and_say_what_to_fix(error, code, words):
    flaky = Flaky(error)
    with pytest.raises(ProviderError) as caught:
        _call(flaky)
    assert caught.value.permanent and caught.value.code == code
    assert words in caught.value.message and POOL in caught.value.message
    assert flaky.calls == 1


def test_internal_errors_are_not_retried_but_not_permanent_either():
    with pytest.raises(ProviderError) as caught:
        _call(Flaky(gexc.InternalServerError("oops")))
    assert not caught.value.permanent and caught.value.code == "INTERNAL"


def test_errors_that_are_not_googles_pass_through():
    def broken():
        raise KeyError("a bug of ours")

    with pytest.raises(KeyError):
        _call(broken)
