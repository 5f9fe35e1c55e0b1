"""Stamps of tokens and classes (workloads/freshness.py), which the ingestion endpoint's per-process
cache re-checks: the class lookup must load a class exactly as the ORM does, and a stamp must
change with everything an ingestion answer rests on, and with nothing else, on PostgreSQL and on
SQLite (`make run`)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone

from controlplane.roles import Role
from tests.factories import CostRatesFactory, WorkloadClassFactory
from workloads.freshness import MAX_LISTED_IDS, class_with_stamp, current_stamps
from workloads.models import ApiToken, EnvironmentRole, PoolHold, WorkloadClass
from workloads.models.environments import default_environment_pk
from workloads.models.tokens import hash_secret
from workloads.services.tokens import _active_token, role_groups

DATABASES = ["default", "contract_sqlite"]
pytestmark = pytest.mark.django_db(databases=DATABASES)


def _field_values(workload_class: WorkloadClass) -> dict:
    return {field.attname: getattr(workload_class, field.attname) for field in WorkloadClass._meta.concrete_fields}


@pytest.mark.parametrize("using", DATABASES)
def test_the_class_loads_as_the_orm_loads_it(using):
    rates = CostRatesFactory.build(name="lookup-rates")
    rates.save(using=using)
    made = WorkloadClassFactory.build(
        slug="lookup-class",
        cost_rates=rates,
        payload_schema={"type": "object", "properties": {"n": {"type": "integer", "default": 3}}},
        backoff_jitter=False,
        shed_load_when_paused=True,
        throughput_per_instance=12.5,
        vcpu_per_instance=Decimal("0.5"),
        memory_gib_per_instance=Decimal("1.25"),
        ordering_key_template="{n}",
    )
    made.save(using=using)
    WorkloadClassFactory.build(slug="lookup-other", cost_rates=rates).save(using=using)

    loaded, paused, _stamp = class_with_stamp("slug", "lookup-class", using=using)
    assert paused is False
    expected = WorkloadClass.objects.using(using).get(slug="lookup-class")
    assert _field_values(loaded) == _field_values(expected)
    # Same types too: converters ran (a dict, not JSON text; Decimals; aware datetimes; bools).
    assert {name: type(value) for name, value in _field_values(loaded).items()} == {
        name: type(value) for name, value in _field_values(expected).items()
    }
    assert loaded.payload_schema["properties"]["n"]["default"] == 3
    assert loaded.backoff_jitter is False and loaded.shed_load_when_paused is True
    assert loaded.created_at.tzinfo is not None
    assert loaded._state.db == using and not loaded._state.adding
    assert loaded.cost_rates.name == "lookup-rates"


@pytest.mark.parametrize("using", DATABASES)
def test_an_unknown_slug_is_none(using):
    assert class_with_stamp("slug", "no-such-class", using=using) is None


def _stale(using, *, tokens=None, classes=None):
    """Of {id: stamp} read earlier, the ones whose stamp is not what it is now."""
    expected = {("token", pk): stamp for pk, stamp in (tokens or {}).items()}
    expected.update({("class", pk): stamp for pk, stamp in (classes or {}).items()})
    current = current_stamps(
        list(tokens or {}), list(classes or {}), now=timezone.now(), role_groups=role_groups(), using=using
    )
    return {key for key, stamp in expected.items() if current.get(key) != stamp}


@pytest.mark.parametrize("using", DATABASES)
def test_a_class_stamp_changes_with_its_row_and_its_pause(using):
    made = WorkloadClassFactory.build(slug="stamped")
    made.cost_rates.save(using=using)
    made.cost_rates_id = made.cost_rates.pk
    made.save(using=using)
    _loaded, _paused, stamp = class_with_stamp("slug", "stamped", using=using)
    assert _stale(using, classes={made.pk: stamp}) == set()
    assert class_with_stamp("id", made.pk, using=using)[2] == stamp

    WorkloadClass.objects.using(using).filter(pk=made.pk).update(dedup_ttl_seconds=120)  # no save(): no updated_at
    assert _stale(using, classes={made.pk: stamp}) == {("class", made.pk)}
    _loaded, _paused, stamp = class_with_stamp("slug", "stamped", using=using)

    hold = PoolHold.objects.using(using).create(
        workload_class=made,
        reason="r",
        expires_at=timezone.now() + timedelta(hours=1),
        bounds_min=0,
        bounds_max=1,
        bounds_source="baseline",
        created_by_label="ops",
        created_at=timezone.now(),
    )
    assert _stale(using, classes={made.pk: stamp}) == {("class", made.pk)}
    _loaded, paused, paused_stamp = class_with_stamp("slug", "stamped", using=using)
    assert paused is True
    PoolHold.objects.using(using).filter(pk=hold.pk).update(state="restored")
    assert _stale(using, classes={made.pk: stamp}) == set()  # resumed: as before the pause

    WorkloadClass.objects.using(using).filter(pk=made.pk).delete()
    assert _stale(using, classes={made.pk: stamp}) == {("class", made.pk)}


@pytest.mark.parametrize("using", DATABASES)
def test_a_token_stamp_changes_with_what_the_token_allows(using):
    users = get_user_model().objects.db_manager(using)
    user = users.create_user(username=f"stamp-{using}")
    user.groups.set(Group.objects.using(using).filter(name="viewer"))
    token = ApiToken.objects.using(using).create(
        user=user, name="t", key_id="stamp1", secret_hash=hash_secret("s"), scopes=["ingest:*"]
    )

    def stamp():
        return _active_token("stamp1", timezone.now(), using=using)[2]

    first = stamp()
    assert _stale(using, tokens={token.pk: first}) == set()
    ApiToken.objects.using(using).filter(pk=token.pk).update(last_used_at=timezone.now())
    assert stamp() == first  # being used changes nothing it allows

    changes = [
        lambda: user.groups.set(Group.objects.using(using).filter(name="operator")),
        lambda: EnvironmentRole.objects.using(using).create(
            user=user, environment_id=default_environment_pk(using), role=Role.ADMIN.group_name
        ),
        lambda: ApiToken.objects.using(using).filter(pk=token.pk).update(scopes=["*"]),
        lambda: users.filter(pk=user.pk).update(is_superuser=True),
        lambda: ApiToken.objects.using(using).filter(pk=token.pk).update(expires_at=timezone.now() + timedelta(days=1)),
    ]
    for change in changes:
        before = stamp()
        change()
        assert _stale(using, tokens={token.pk: before}) == {("token", token.pk)}
        assert stamp() != before

    current = stamp()
    users.filter(pk=user.pk).update(is_active=False)
    assert _stale(using, tokens={token.pk: current}) == {("token", token.pk)}
    users.filter(pk=user.pk).update(is_active=True)
    assert _stale(using, tokens={token.pk: current}) == set()
    ApiToken.objects.using(using).filter(pk=token.pk).update(revoked_at=timezone.now())
    assert _stale(using, tokens={token.pk: current}) == {("token", token.pk)}


@pytest.mark.parametrize("using", DATABASES)
def test_tokens_and_classes_are_checked_together(using):
    made = WorkloadClassFactory.build(slug="together")
    made.cost_rates.save(using=using)
    made.cost_rates_id = made.cost_rates.pk
    made.save(using=using)
    user = get_user_model().objects.db_manager(using).create_user(username=f"together-{using}")
    token = ApiToken.objects.using(using).create(
        user=user, name="t", key_id="toget1", secret_hash=hash_secret("s"), scopes=["ingest:*"]
    )
    token_stamp = _active_token("toget1", timezone.now(), using=using)[2]
    class_stamp = class_with_stamp("id", made.pk, using=using)[2]
    assert _stale(using, tokens={token.pk: token_stamp}, classes={made.pk: class_stamp}) == set()
    assert _stale(using, tokens={token.pk: "other"}, classes={made.pk: class_stamp, 10**9: "gone"}) == {
        ("token", token.pk),
        ("class", 10**9),
    }


@pytest.mark.parametrize("using", DATABASES)
@pytest.mark.parametrize("count", [1, MAX_LISTED_IDS, MAX_LISTED_IDS + 1, 3 * MAX_LISTED_IDS])
def test_any_number_of_tokens_and_classes_is_checked(using, count):
    """Up to MAX_LISTED_IDS ids are listed in the statement, more go as one array on PostgreSQL:
    both answer the same."""
    rates = CostRatesFactory.build(name=f"many-{count}")
    rates.save(using=using)
    classes = []
    for n in range(count):
        made = WorkloadClassFactory.build(slug=f"many-{count}-{n}", cost_rates=rates)
        made.save(using=using)
        classes.append(made)
    user = get_user_model().objects.db_manager(using).create_user(username=f"many-{count}-{using}")
    tokens = [
        ApiToken.objects.using(using).create(
            user=user, name="t", key_id=f"many{count}x{n}", secret_hash=hash_secret("s"), scopes=["ingest:*"]
        )
        for n in range(count)
    ]
    token_stamps = {t.pk: _active_token(t.key_id, timezone.now(), using=using)[2] for t in tokens}
    class_stamps = {c.pk: class_with_stamp("id", c.pk, using=using)[2] for c in classes}
    assert _stale(using, tokens=token_stamps, classes=class_stamps) == set()
    WorkloadClass.objects.using(using).filter(pk=classes[-1].pk).update(max_instances=77)
    ApiToken.objects.using(using).filter(pk=tokens[0].pk).update(revoked_at=timezone.now())
    assert _stale(using, tokens=token_stamps, classes=class_stamps) == {
        ("token", tokens[0].pk),
        ("class", classes[-1].pk),
    }


@pytest.mark.django_db(databases=["default"])
def test_a_lone_request_s_recheck_keeps_its_generic_plan():
    """The re-check of one token and one class runs on every ingestion request: PostgreSQL must
    reuse its prepared plan instead of planning it each time (an array of ids made it plan anew,
    0.4 ms of the backend's CPU per request)."""
    made = WorkloadClassFactory(slug="planned")
    user = get_user_model().objects.create_user(username="planned")
    token = ApiToken.objects.create(
        user=user, name="t", key_id="planned1", secret_hash=hash_secret("s"), scopes=["ingest:*"]
    )
    for _ in range(12):  # psycopg prepares after 5 runs; PostgreSQL plans 5 custom runs before a generic one
        current_stamps([token.pk], [made.pk], now=timezone.now(), role_groups=role_groups(), using="default")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%'token' AS kind%"],
        )
        [(generic, custom)] = cursor.fetchall()
    assert generic > 0, f"planned anew on every run: {custom} custom plans, no generic plan"
