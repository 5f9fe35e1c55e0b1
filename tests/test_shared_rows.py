"""tests/shared_rows.py: rows built once per module are seen by every test of the module, what a
test writes is rolled back before the next one, and the module's rows are gone after it."""

import pytest

from tests.shared_rows import shared_rows
from workloads.models import CostRates


@pytest.fixture(scope="module")
def shared_rates(django_db_setup, django_db_blocker):
    with shared_rows(django_db_blocker):
        yield CostRates.objects.create(name="shared-rates")
    with django_db_blocker.unblock():  # the module's rows end with it
        assert not CostRates.objects.filter(name="shared-rates").exists()


def _written_by_one_test_only(shared_rates):
    # Each test sees the module's row and nothing a test before it wrote, whichever runs first.
    assert list(CostRates.objects.filter(name__startswith="shared-").values_list("name", flat=True)) == ["shared-rates"]
    CostRates.objects.create(name="shared-written-by-a-test")
    shared_rates.refresh_from_db()


@pytest.mark.django_db
def test_a_test_sees_the_shared_rows_and_writes_its_own(shared_rates):
    _written_by_one_test_only(shared_rates)


@pytest.mark.django_db
def test_another_test_does_not_see_what_the_first_wrote(shared_rates):
    _written_by_one_test_only(shared_rates)
