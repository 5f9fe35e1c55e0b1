"""Secrets never leak: not into the logs (everything logged at any level, SQL included, while
logging in, failing to log in, issuing a token, using it, using a wrong one, and hitting a 500),
not into the audit log, and not into error pages (DEBUG is off, as in production).

`manage.py check --deploy` being clean is tested in tests/test_settings.py."""

from __future__ import annotations

import json
import logging
import re

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from controlplane.roles import Role
from workloads.api import views as api_views
from workloads.models import AuditEvent

PASSWORD = "Tr0ub4dor-and-3-horses"
WRONG_PASSWORD = "guess-Number-7-of-many"

pytestmark = pytest.mark.urls("tests.dashboards.urls_extra")  # adds /boom/, a page that raises


@pytest.fixture
def everything_logged(caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    connection.force_debug_cursor = True  # SQL with its parameters, as with DEBUG on
    yield caplog
    connection.force_debug_cursor = False


def _boom(*args, **kwargs):
    raise RuntimeError("a bug")


def test_no_secret_reaches_the_logs_the_audit_log_or_an_error_page(make_user, everything_logged, monkeypatch):
    assert not settings.DEBUG
    make_user("sam", Role.ADMIN, password=PASSWORD)
    browser = Client(raise_request_exception=False)
    pages = []

    pages.append(browser.post("/accounts/login/", {"username": "sam", "password": WRONG_PASSWORD}))
    assert pages[-1].status_code == 200
    assert browser.post("/accounts/login/", {"username": "sam", "password": PASSWORD}).status_code == 302

    issued = browser.post(
        "/api/v1/tokens/", json.dumps({"name": "ci", "scopes": ["*"]}), content_type="application/json"
    )
    assert issued.status_code == 201
    raw = issued.json()["token"]
    secret = raw.split("_", 2)[2]
    wrong = raw[: -len(secret)] + "x" * len(secret)

    bot = APIClient(raise_request_exception=False)
    bot.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert bot.get("/api/v1/me/").status_code == 200
    pages.append(bot.post("/api/v1/tokens/", {"name": "", "scopes": [secret]}, format="json"))  # 400
    assert pages[-1].status_code == 400
    intruder = APIClient(raise_request_exception=False)
    intruder.credentials(HTTP_AUTHORIZATION=f"Bearer {wrong}")
    pages.append(intruder.get("/api/v1/me/"))
    assert pages[-1].status_code == 401

    # Two 500s carrying every secret in the request: an HTML page and an API endpoint.
    pages.append(browser.post("/boom/", {"password": PASSWORD}, HTTP_AUTHORIZATION=f"Bearer {raw}"))
    monkeypatch.setattr(api_views.MeView, "get", _boom)
    pages.append(bot.get("/api/v1/me/"))
    assert [p.status_code for p in pages[-2:]] == [500, 500]
    assert pages[-1].json()["type"] == "server_error"

    secrets = {"SECRET_KEY": settings.SECRET_KEY, "password": PASSWORD, "wrong password": WRONG_PASSWORD}
    secrets |= {"token": raw, "token secret": secret, "wrong token": wrong}
    logs = everything_logged.text
    assert "Internal Server Error: /boom/" in logs and "SELECT" in logs  # the capture works
    audit = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert "api_token.issue" in audit
    for name, value in secrets.items():
        assert value not in logs, f"the {name} is in the logs"
        assert value not in audit, f"the {name} is in the audit log"
        for page in pages:
            assert value not in page.content.decode(), f"the {name} is in a {page.status_code} page"


def test_a_token_issued_in_the_admin_is_shown_once_on_the_page_and_never_put_in_a_cookie(make_user):
    from django.contrib.messages.storage.cookie import CookieStorage
    from django.test import RequestFactory

    from workloads.models import ApiToken
    from workloads.services.tokens import api_token_authenticate

    admin = make_user("root", Role.ADMIN, password=PASSWORD)
    client = Client()
    client.force_login(admin)
    response = client.post(
        "/admin/workloads/apitoken/add/", {"name": "ci", "user": admin.pk, "scopes_text": "read", "expires_at": ""}
    )
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get(name="ci")
    raw = re.search(r'<code id="issued-token">([^<]+)</code>', response.content.decode()).group(1)
    assert api_token_authenticate(raw) == token  # the page shows the token that works

    # No cookie carries it, the messages cookie included (signed and compressed, not encrypted).
    storage = CookieStorage(RequestFactory().get("/"))
    for cookie in client.cookies.values():
        assert raw not in cookie.value
        decoded = storage._decode(cookie.value) if cookie.key == CookieStorage.cookie_name else None
        assert raw not in str([str(message) for message in decoded or []])
    # And the next page (where messages would show) does not show it again.
    assert raw not in client.get("/admin/workloads/apitoken/").content.decode()
