"""Local worker pools: creation, generations and the count history the metrics read."""

import pytest

from tests.workloads.providers.conftest import PROJECT
from workloads.providers.base import PoolSpec, ProviderError
from workloads.providers.local import LocalWorkerPools
from workloads.providers.local.models import LocalPoolChange


def _spec(slug="ocr"):
    return PoolSpec(slug=slug, worker_pool=f"projects/{PROJECT}/locations/local/workerPools/{slug}")


def test_ensure_creates_once_and_leaves_an_existing_pool_alone(db, clock):
    pools = LocalWorkerPools(now=clock)
    created = pools.ensure(_spec(), initial_instances=2)
    assert (created.instance_count, created.generation, created.ready) == (2, 1, True)
    assert created.update_time == clock.now and created.last_modifier == "controlplane"
    pools.set_instances(_spec(), 5, reason="backlog")
    again = pools.ensure(_spec(), initial_instances=0)
    assert (again.instance_count, again.generation) == (5, 2)


def test_only_a_real_change_bumps_the_generation_and_is_recorded(db, clock):
    pools = LocalWorkerPools(now=clock)
    pools.ensure(_spec(), initial_instances=1)
    clock.advance(minutes=1)
    assert pools.set_instances(_spec(), 3, reason="weekend policy").generation == 2
    clock.advance(minutes=1)
    assert pools.set_instances(_spec(), 3, reason="same").generation == 2
    history = list(LocalPoolChange.objects.order_by("changed_at").values_list("instance_count", "generation", "reason"))
    assert history == [(1, 1, "created"), (3, 2, "weekend policy")]


def test_an_unknown_pool_says_which_and_how_it_comes_to_exist(db):
    with pytest.raises(ProviderError) as caught:
        LocalWorkerPools().set_instances(_spec("missing-pool"), 2, reason="x")
    error = caught.value
    assert error.permanent and error.code == "NOT_FOUND" and error.resource == _spec("missing-pool").worker_pool
    assert "missing-pool" in error.message and "ensure" in error.message


def test_a_negative_count_is_refused_before_anything_changes(db):
    pools = LocalWorkerPools()
    pools.ensure(_spec(), initial_instances=1)
    with pytest.raises(ProviderError) as caught:
        pools.set_instances(_spec(), -2, reason="bad")
    assert caught.value.code == "INVALID_ARGUMENT"
    assert pools.get(_spec()).instance_count == 1
