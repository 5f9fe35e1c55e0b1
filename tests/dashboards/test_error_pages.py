"""Error pages explain and link back; provider errors say what failed and what to fix; no stack
trace ever reaches the browser."""

import pytest
from django.template.loader import render_to_string
from django.test import Client

from dashboards.errors import provider_error_context
from workloads.providers.base import ProviderError

pytestmark = pytest.mark.urls("tests.dashboards.urls_extra")


def test_404_explains_and_links_back(ui_client, viewer):
    response = ui_client(viewer).get("/no/such/page/")
    html = response.content.decode()
    assert response.status_code == 404
    assert "Nothing here" in html and "<code>/no/such/page/</code>" in html
    assert '<a class="btn" href="/">Back to the fleet</a>' in html


def test_403_says_which_role_is_needed_and_offers_another_login(ui_client, outsider):
    response = ui_client(outsider).get("/")
    html = response.content.decode()
    assert response.status_code == 403
    assert "This page needs the viewer role." in html
    assert "with <strong>no role</strong>" in html
    assert "Log in as someone else" in html and "Back to the fleet" not in html


def test_500_is_a_plain_page_without_internals(viewer):
    client = Client(raise_request_exception=False)
    client.force_login(viewer)
    response = client.get("/boom/")
    html = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong on our side" in html and 'href="/"' in html
    assert "hunter2" not in html and "Traceback" not in html and "RuntimeError" not in html


def test_an_expired_csrf_token_gets_an_explanation(viewer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)
    response = client.post("/accounts/logout/")
    assert response.status_code == 403
    assert b"This form has expired" in response.content and b"Nothing was changed" in response.content


def test_a_permanent_provider_error_says_what_failed_and_what_to_fix(ui_client, viewer):
    response = ui_client(viewer).get("/provider-denied/")
    html = response.content.decode()
    assert response.status_code == 502
    assert "What failed" in html and "Permission denied on the worker pool" in html
    assert "What to fix" in html and "Grant the control plane&#x27;s service account" in html
    assert "projects/p/locations/l/workerPools/docs" in html
    assert "Traceback" not in html and 'aria-label="Main"' in html  # a normal page, with navigation


def test_a_transient_provider_error_is_a_503_that_suggests_waiting(ui_client, viewer):
    response = ui_client(viewer).get("/provider-unavailable/")
    assert response.status_code == 503
    assert b"Reload in a minute" in response.content


def test_htmx_gets_the_provider_error_as_a_fragment(ui_client, viewer):
    response = ui_client(viewer).get("/provider-denied/", headers={"HX-Request": "true"})
    html = response.content.decode().strip()
    assert response.status_code == 502
    assert html.startswith('<div class="provider-error" role="alert">') and "<html" not in html


def test_the_api_keeps_its_own_error_handling(viewer):
    client = Client(raise_request_exception=False)
    client.force_login(viewer)
    response = client.get("/api/provider-denied/")
    assert response.status_code == 500 and b"What to fix" not in response.content


@pytest.mark.parametrize(
    ("code", "permanent", "fix"),
    [
        ("PERMISSION_DENIED", True, "Grant the control plane's service account the IAM role"),
        ("NOT_FOUND", True, "Create projects/p/topics/t, or correct its name"),
        ("UNAUTHENTICATED", True, "no valid Google credentials"),
        ("SOMETHING_NEW", True, "Check the provider configuration"),
        ("UNAVAILABLE", False, "Reload in a minute"),
    ],
)
def test_each_kind_of_provider_error_gets_a_fix(code, permanent, fix):
    context = provider_error_context(
        ProviderError("boom", permanent=permanent, code=code, resource="projects/p/topics/t"), doing="Reading the pool"
    )
    assert context["what_failed"] == "Reading the pool failed: boom"
    assert fix in context["what_to_fix"]


def test_the_empty_state_partial():
    html = render_to_string(
        "dashboards/partials/empty_state.html", {"title": "No dead letters", "message": "All clear.", "hint": "Relax."}
    )
    assert '<p class="empty-title">No dead letters</p>' in html and "All clear." in html and "Relax." in html
