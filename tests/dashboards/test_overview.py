from django.test import Client

from tests.factories import WorkloadClassFactory


def test_it_redirects_anonymous_users_to_login(db):
    response = Client().get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_it_lists_classes_for_viewers(viewer):
    WorkloadClassFactory(slug="shown-class")
    client = Client()
    client.force_login(viewer)
    response = client.get("/")
    assert response.status_code == 200
    assert b"shown-class" in response.content


def test_it_refuses_users_without_a_role(outsider):
    client = Client()
    client.force_login(outsider)
    assert client.get("/").status_code == 403


def test_login_works_with_csrf_enforced(viewer):
    client = Client(enforce_csrf_checks=True)
    page = client.get("/accounts/login/")
    token = page.cookies["csrftoken"].value
    response = client.post(
        "/accounts/login/",
        {"username": viewer.username, "password": "correct-horse-battery-9", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    refused = Client(enforce_csrf_checks=True).post(
        "/accounts/login/", {"username": viewer.username, "password": "correct-horse-battery-9"}
    )
    assert refused.status_code == 403
