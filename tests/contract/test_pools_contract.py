"""The WorkerPools port's contract."""

import pytest

from workloads.providers.base import ProviderError


def test_get_reports_the_instance_count(harness):
    spec = harness.pool_spec()
    harness.create_pool(spec, instance_count=2)
    state = harness.providers.pools.get(spec)
    assert state.name == spec.worker_pool
    assert state.instance_count == 2
    assert state.ready is True


def test_set_instances_round_trip_and_no_op_when_already_there(harness):
    pools = harness.providers.pools
    spec = harness.pool_spec()
    harness.create_pool(spec, instance_count=1)
    before = pools.get(spec)
    state = pools.set_instances(spec, 4, reason="backlog 1200, queue age 340 s")
    assert state.instance_count == 4
    assert state.generation > before.generation
    assert pools.get(spec).instance_count == 4
    again = pools.set_instances(spec, 4, reason="same target")
    assert again.instance_count == 4 and again.generation == state.generation  # nothing was changed
    assert pools.set_instances(spec, 0, reason="paused").instance_count == 0


def test_a_missing_pool_is_a_permanent_readable_error(harness):
    spec = harness.pool_spec("no-such-pool")
    with pytest.raises(ProviderError) as caught:
        harness.providers.pools.get(spec)
    assert caught.value.permanent
    assert "no-such-pool" in caught.value.message


def test_set_instances_rejects_a_negative_count(harness):
    spec = harness.pool_spec()
    harness.create_pool(spec, instance_count=1)
    with pytest.raises((ValueError, ProviderError)):
        harness.providers.pools.set_instances(spec, -1, reason="bad")


def test_transient_failures_are_retried(harness):
    spec = harness.pool_spec()
    harness.create_pool(spec, instance_count=1)
    if not harness.fail_next_pool_calls("UNAVAILABLE", times=2):
        pytest.skip(f"{harness.name}: no fault injection (the local provider has no network to fail)")
    assert harness.providers.pools.set_instances(spec, 3, reason="retry me").instance_count == 3


def test_permission_denied_is_permanent_and_changes_nothing(harness):
    spec = harness.pool_spec()
    harness.create_pool(spec, instance_count=2)
    if not harness.fail_next_pool_calls("PERMISSION_DENIED", times=1):
        pytest.skip(f"{harness.name}: no fault injection (the local provider has no network to fail)")
    with pytest.raises(ProviderError) as caught:
        harness.providers.pools.set_instances(spec, 5, reason="denied")
    assert caught.value.permanent
    assert "roles/run.developer" in caught.value.message  # says which role is missing
    assert harness.providers.pools.get(spec).instance_count == 2


def test_get_reports_the_revision_and_a_new_one_after_a_deploy(harness):
    spec = harness.pool_spec()
    harness.create_pool(spec, instance_count=1)
    before = harness.providers.pools.get(spec).revision
    harness.deploy_revision(spec)
    after = harness.providers.pools.get(spec).revision
    assert after and after != before
