"""The fleet table fits a laptop's width (1440x900, the README's screenshot) even with a long class
name, such as the demo's "Document conversion on a Worker Pool": the name wraps, the columns stay."""

from tests.dashboards.helpers import HEALTHY_SLUG, feed_demo_telemetry


def test_a_long_class_name_wraps_instead_of_pushing_columns_off_a_laptop_screen(logged_in_page, demo_fleet):
    from django.utils import timezone

    from workloads.models import WorkloadClass

    WorkloadClass.objects.filter(slug=HEALTHY_SLUG).update(name="Document conversion on a Worker Pool")
    feed_demo_telemetry(timezone.now())
    page = logged_in_page("viewer", viewport=(1440, 900))
    page.goto("/")
    fit = page.evaluate(
        """() => {
        const wrap = document.querySelector('#fleet-rows').closest('.table-wrap');
        const cost = document.querySelector('thead th:last-child').getBoundingClientRect();
        return {scroll: wrap.scrollWidth, client: wrap.clientWidth, costRight: cost.right, width: innerWidth};
    }"""
    )
    assert fit["scroll"] <= fit["client"], fit  # no horizontal scrolling
    assert fit["costRight"] <= fit["width"], fit  # the last column is on screen
    name = page.get_by_role("link", name="Document conversion on a Worker Pool")
    assert name.evaluate("el => el.getClientRects().length") >= 1
    assert page.js_errors == []
