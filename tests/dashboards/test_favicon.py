"""Browsers ask every page's host for /favicon.ico; the admin's pages link the icon too."""

from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from django.test import Client


def test_favicon_ico_serves_the_products_icon_to_anyone(db):
    response = Client().get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    with open(finders.find("img/favicon.svg"), "rb") as icon:
        assert response.content == icon.read()
    assert "max-age" in response["Cache-Control"]


def test_the_admin_links_the_icon(db):
    staff = get_user_model().objects.create_superuser("root", password="correct-horse-battery-9")
    client = Client()
    client.force_login(staff)
    for url in ("/admin/", "/admin/auth/user/", "/admin/auth/user/add/"):
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert 'rel="icon"' in html and "img/favicon.svg" in html, url
