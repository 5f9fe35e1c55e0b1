"""`make run` runs with DEBUG, yet a person trying the product meets its own 404 and 500 pages,
not Django's technical ones (issue 19, item 15): PRODUCT_ERROR_PAGES_IN_DEBUG, which the Makefile
sets. The API keeps answering JSON; the admin keeps Django's pages."""

import json
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

TECHNICAL = "DEBUG = True"


@pytest.fixture
def debug_with_product_pages(settings):
    settings.DEBUG = True
    settings.PRODUCT_ERROR_PAGES_IN_DEBUG = True


@pytest.mark.urls("tests.dashboards.urls_extra")
def test_under_debug_pages_fail_with_the_products_pages_and_the_api_with_json(logged_in_page, debug_with_product_pages):
    page = logged_in_page("viewer")
    for path in ("/no/such/page/", "/classes/no-such-class/"):  # no URL pattern; a view's Http404
        response = page.goto(path)
        assert response.status == 404, path
        expect(page.get_by_role("heading", name="Nothing here")).to_be_visible()
        expect(page.locator("main code").first).to_have_text(path)
        assert TECHNICAL not in page.content(), path
        # The page is the product's: its navigation, and a way back.
        expect(page.get_by_role("navigation", name="Main")).to_be_visible()
        page.get_by_role("link", name="Back to the fleet").click()
        page.wait_for_url(lambda url: urlparse(url).path == "/")

    response = page.goto("/boom/")
    assert response.status == 500
    expect(page.get_by_text("Something went wrong on our side")).to_be_visible()
    html = page.content()
    assert TECHNICAL not in html and "hunter2" not in html and "Traceback" not in html

    # The API answers JSON, whether no pattern matches or its view finds nothing.
    for path in ("/api/v1/no-such-thing/", "/api/v1/classes/no-such-class/"):
        response = page.goto(path)
        assert response.status == 404, path
        assert response.headers["content-type"].startswith("application/json"), path
        assert json.loads(response.text())["detail"], path
    assert page.js_errors == []


# The technical pages break the Content-Security-Policy (inline styles), which fails any browser
# test: these two read them with Django's test client.
def test_the_admin_keeps_djangos_pages_under_debug(admin_client, debug_with_product_pages):
    response = admin_client.get("/admin/workloads/no-such-model/")
    assert response.status_code == 404 and TECHNICAL in response.content.decode()


def test_without_the_setting_debug_shows_the_technical_page(client, db, settings):
    # The control: the browser test would pass by accident if DEBUG were not on.
    settings.DEBUG = True
    settings.PRODUCT_ERROR_PAGES_IN_DEBUG = False
    response = client.get("/no/such/page/")
    assert response.status_code == 404 and TECHNICAL in response.content.decode()
    settings.PRODUCT_ERROR_PAGES_IN_DEBUG = True
    response = client.get("/no/such/page/")
    assert response.status_code == 404 and TECHNICAL not in response.content.decode()
    assert "Nothing here" in response.content.decode()


def test_make_run_turns_the_products_pages_on():
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert "run: export PRODUCT_ERROR_PAGES_IN_DEBUG ?= 1" in makefile
