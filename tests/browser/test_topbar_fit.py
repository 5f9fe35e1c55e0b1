"""The top bar keeps every link and the Log out button on screen once the environment switcher is
there too: on a laptop no nav link hides in the nav's (scrollbar-less) overflow, and on a phone
Log out is not pushed past the right edge."""

import pytest

from tests.browser.conftest import screenshot

TOPBAR_FIT = """() => {
    const nav = document.querySelector('.mainnav ul').getBoundingClientRect();
    const links = [...document.querySelectorAll('.mainnav a')].map(a => {
        const box = a.getBoundingClientRect();
        return {label: a.textContent.trim(), left: box.left, right: box.right, navLeft: nav.left, navRight: nav.right};
    });
    const logout = [...document.querySelectorAll('.account button')].find(b => b.textContent.trim() === 'Log out');
    return {links, logoutRight: logout.getBoundingClientRect().right, width: document.documentElement.clientWidth};
}"""


@pytest.fixture
def two_environments(transactional_db):
    from workloads.models.environments import Environment, default_environment_pk

    default_environment_pk()
    Environment.objects.create(
        slug="staging",
        name="Staging",
        projects=["acme-staging"],
        regions=["europe-west1"],
        monitoring_project="acme-staging",
    )


def test_on_a_laptop_every_nav_link_is_visible_beside_the_environment_switcher(logged_in_page, two_environments):
    page = logged_in_page("admin", viewport=(1440, 900))
    page.goto("/")
    assert page.get_by_test_id("env-switch").is_visible()
    fit = page.evaluate(TOPBAR_FIT)
    hidden = [
        link["label"]
        for link in fit["links"]
        if link["right"] > link["navRight"] + 0.5 or link["left"] < link["navLeft"] - 0.5
    ]
    assert hidden == [], fit
    assert fit["logoutRight"] <= fit["width"], fit
    assert page.js_errors == []
    screenshot(page, "topbar-laptop")


def test_on_a_phone_log_out_stays_on_screen_beside_the_environment_switcher(logged_in_page, two_environments):
    page = logged_in_page("admin", viewport=(390, 844))
    page.goto("/")
    assert page.get_by_test_id("env-switch").is_visible()
    fit = page.evaluate(TOPBAR_FIT)
    assert fit["logoutRight"] <= fit["width"], fit
    assert page.js_errors == []
    screenshot(page, "topbar-phone")
