"""The fleet overview in pages, in Chromium: what is wrong comes first on page 1, the page links
move through the fleet, the 15 s refresh keeps the page shown, and a sort starts again from page 1."""

from datetime import timedelta

import pytest
from playwright.sync_api import expect


@pytest.fixture
def big_fleet(transactional_db):
    """55 classes of one team, all fresh and within their SLOs but one that breaches its SLO."""
    from django.utils import timezone

    from tests.factories import SloFactory, WorkloadClassFactory
    from workloads.models import ClassTelemetry, SloStatus

    now = timezone.now()
    for n in range(55):
        wc = WorkloadClassFactory(slug=f"fleet-{n:02d}", name=f"Fleet {n:02d}", owner_team="paging")
        slo = SloFactory(workload_class=wc)
        SloStatus.objects.create(
            slo=slo, evaluated_at=now, window_start=now - timedelta(days=28), met=n != 42, budget_remaining_percent=90
        )
        ClassTelemetry.objects.create(workload_class=wc, fetched_at=now, newest_sample_at=now - timedelta(minutes=1))


def _slugs(page) -> list[str]:
    return page.locator("#fleet-rows .slug").all_inner_texts()


def test_the_fleet_pages_with_what_is_wrong_first(logged_in_page, big_fleet):
    page = logged_in_page("viewer")
    page.clock.install()
    page.goto("/")
    expect(page.locator("#fleet-rows tr")).to_have_count(50)
    slugs = _slugs(page)
    assert slugs[0] == "fleet-42"  # the breached class first, then the rest by slug
    assert slugs[1:] == [f"fleet-{n:02d}" for n in range(50) if n != 42]
    expect(page.locator(".page-meta")).to_contain_text("55 classes · showing 1–50")

    page.get_by_role("link", name="Next →").click()
    expect(page.locator(".page-of")).to_have_text("Page 2 of 2")
    expect(page.locator("#fleet-rows tr")).to_have_count(5)
    assert _slugs(page) == [f"fleet-{n:02d}" for n in range(50, 55)]
    assert page.url.endswith("?page=2")

    # The 15 s refresh asks for the page shown and leaves it in place.
    with page.expect_response(lambda r: r.request.headers.get("hx-request") == "true") as refresh:
        page.clock.fast_forward(16_000)
    assert "page=2" in refresh.value.url
    expect(page.locator("#fleet-rows tr")).to_have_count(5)

    # Sorting starts again from the first page.
    page.locator("th a.sort-link", has_text="Class / team").click()
    expect(page.locator(".page-of")).to_have_text("Page 1 of 2")
    assert _slugs(page)[0] == "fleet-00" and "page=" not in page.url
    assert page.js_errors == []
