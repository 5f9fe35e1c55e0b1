"""The Cloud Run WorkerPools adapter against the in-process Cloud Run Admin fake, through the real
run_v2.WorkerPoolsClient: the exact update request, LRO waiting, retries and permanent errors."""

import pytest

from workloads.providers.base import PoolSpec, ProviderError
from workloads.providers.gcp.cloudrun import CloudRunWorkerPools
from workloads.providers.gcp.errors import Backoff

POOL = "projects/demo-proj/locations/us-central1/workerPools/render"
SPEC = PoolSpec(slug="render", worker_pool=POOL)
FAST = Backoff(initial=0.01, maximum=0.05, deadline=5.0)


@pytest.fixture
def pools(gcp_fakes, fake_cloud_run):
    fake_cloud_run.add_pool(POOL, instance_count=2)
    return CloudRunWorkerPools(gcp_fakes.run_client, backoff=FAST, operation_timeout=30)


def test_it_reads_the_state_of_a_ready_pool(pools, fake_cloud_run):
    state = pools.get(SPEC)
    assert state.name == POOL and state.instance_count == 2
    assert state.generation == 1 and state.observed_generation == 1
    assert state.ready and not state.reconciling and state.message == ""
    assert state.last_modifier == "someone@example.com"
    assert state.update_time is not None and state.update_time.tzinfo is not None
    [request] = fake_cloud_run.calls("GetWorkerPool")
    assert request.name == POOL


def test_the_update_sends_the_fetched_pool_with_exactly_the_scaling_mask(pools, fake_cloud_run):
    fetched_etag = fake_cloud_run.pools[POOL].etag
    state = pools.set_instances(SPEC, 5, reason="backlog 1200")
    [update] = fake_cloud_run.calls("UpdateWorkerPool")
    assert list(update.update_mask.paths) == ["scaling.manual_instance_count"]
    assert update.worker_pool.name == POOL
    assert update.worker_pool.etag == fetched_etag  # optimistic concurrency rides along
    assert update.worker_pool.scaling.manual_instance_count == 5
    assert not update.validate_only
    assert state.instance_count == 5 and state.generation == 2 and state.ready
    assert state.last_modifier.startswith("controlplane@")
    stored = fake_cloud_run.pools[POOL]
    assert stored.template.containers[0].image == "us-docker.pkg.dev/demo/worker:1"  # nothing else touched
    assert dict(stored.labels) == {"managed-by": "controlplane"}


def test_it_waits_for_a_pending_operation(pools, fake_cloud_run):
    fake_cloud_run.pending_polls = 2
    state = pools.set_instances(SPEC, 3, reason="schedule")
    assert len(fake_cloud_run.calls("GetOperation")) == 2  # polled until done, not returned early
    assert state.instance_count == 3 and state.ready and state.observed_generation == state.generation


def test_a_pool_still_reconciling_is_not_ready(pools, fake_cloud_run):
    fake_cloud_run.pending_polls = 5
    pools._operation_timeout = 0.5
    with pytest.raises(ProviderError) as caught:
        pools.set_instances(SPEC, 4, reason="slow rollout")
    assert not caught.value.permanent and "has not finished" in caught.value.message
    state = pools.get(SPEC)
    assert state.instance_count == 4 and state.reconciling and not state.ready


def test_no_update_is_sent_when_the_count_is_already_there(pools, fake_cloud_run):
    state = pools.set_instances(SPEC, 2, reason="steady")
    assert state.instance_count == 2 and state.generation == 1
    assert fake_cloud_run.calls("UpdateWorkerPool") == []


@pytest.mark.parametrize("stale_etag_code", ["ABORTED", "FAILED_PRECONDITION"])
def test_a_concurrent_change_is_re_read_instead_of_overwritten(pools, fake_cloud_run, stale_etag_code):
    import grpc

    fake_cloud_run.stale_etag_code = grpc.StatusCode[stale_etag_code]
    fake_cloud_run.change_behind_our_back(POOL)
    state = pools.set_instances(SPEC, 6, reason="backlog")
    assert len(fake_cloud_run.calls("UpdateWorkerPool")) == 2  # the first one refused on the stale etag
    # FAILED_PRECONDITION costs one more read: the one that tells a stale etag from a real precondition.
    assert len(fake_cloud_run.calls("GetWorkerPool")) == {"ABORTED": 2, "FAILED_PRECONDITION": 3}[stale_etag_code]
    assert state.instance_count == 6
    assert fake_cloud_run.pools[POOL].labels["touched-by"] == "someone-else"  # their change survived


def test_unavailable_twice_then_success(pools, fake_cloud_run):
    fake_cloud_run.fail_next("UNAVAILABLE", 2, method="UpdateWorkerPool")
    assert pools.set_instances(SPEC, 7, reason="retry").instance_count == 7
    assert len(fake_cloud_run.calls("UpdateWorkerPool")) == 3


def test_permission_denied_on_the_update_is_permanent_and_changes_nothing(pools, fake_cloud_run):
    fake_cloud_run.fail_next("PERMISSION_DENIED", 1, method="UpdateWorkerPool")
    with pytest.raises(ProviderError) as caught:
        pools.set_instances(SPEC, 9, reason="denied")
    error = caught.value
    assert error.permanent and error.code == "PERMISSION_DENIED"
    assert f"roles/run.developer on {POOL}" in error.message
    assert len(fake_cloud_run.calls("UpdateWorkerPool")) == 1  # not retried
    assert pools.get(SPEC).instance_count == 2


def test_a_missing_act_as_names_the_service_account_user_role(pools, fake_cloud_run):
    fake_cloud_run.deny_act_as(POOL)
    with pytest.raises(ProviderError) as caught:
        pools.set_instances(SPEC, 4, reason="act as")
    error = caught.value
    assert error.permanent and error.code == "PERMISSION_DENIED"
    assert "roles/iam.serviceAccountUser" in error.message
    assert "worker@demo-proj.iam.gserviceaccount.com" in error.message  # what to grant it on
    assert "roles/run.developer" not in error.message
    assert len(fake_cloud_run.calls("UpdateWorkerPool")) == 1


def test_a_failed_precondition_that_is_not_a_stale_etag_is_not_retried(pools, fake_cloud_run):
    fake_cloud_run.fail_next("FAILED_PRECONDITION", 1, method="UpdateWorkerPool")
    with pytest.raises(ProviderError) as caught:
        pools.set_instances(SPEC, 5, reason="precondition")
    assert caught.value.permanent and caught.value.code == "FAILED_PRECONDITION"
    assert len(fake_cloud_run.calls("UpdateWorkerPool")) == 1


def test_a_failed_operation_is_a_permanent_error(pools, fake_cloud_run):
    import grpc

    fake_cloud_run.operation_error = (grpc.StatusCode.FAILED_PRECONDITION, "Revision 'render-00002' is not ready")
    with pytest.raises(ProviderError) as caught:
        pools.set_instances(SPEC, 3, reason="rollout fails")
    assert caught.value.permanent and "is not ready" in caught.value.message
    assert pools.get(SPEC).instance_count == 2


def test_a_missing_pool_names_it(pools):
    with pytest.raises(ProviderError) as caught:
        pools.get(PoolSpec(slug="ghost", worker_pool=POOL.replace("render", "ghost")))
    assert caught.value.permanent and caught.value.code == "NOT_FOUND"
    assert "workerPools/ghost" in caught.value.message
