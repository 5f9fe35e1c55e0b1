import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from controlplane.roles import Role, user_role
from workloads.models import AuditEvent


def test_createuser_with_a_password_from_the_environment(db, monkeypatch, capsys):
    monkeypatch.setenv("ONCALL_PASSWORD", "a-long-and-unusual-passphrase")
    call_command("createuser", "oncall", "--role", "operator", "--password-from-env", "ONCALL_PASSWORD")
    user = get_user_model().objects.get(username="oncall")
    assert user_role(user) == Role.OPERATOR and user.check_password("a-long-and-unusual-passphrase")
    assert not user.is_staff
    assert AuditEvent.objects.filter(action="user.create", via="cli").exists()


def test_createuser_refuses_an_existing_user_without_update(db):
    call_command("createuser", "bot", "--role", "viewer")
    with pytest.raises(CommandError, match="already exists"):
        call_command("createuser", "bot", "--role", "admin")
    call_command("createuser", "bot", "--role", "admin", "--update")
    user = get_user_model().objects.get(username="bot")
    assert user_role(user) == Role.ADMIN and user.is_staff


def test_createuser_refuses_an_empty_password_variable(db):
    with pytest.raises(CommandError, match="NOPE_NOT_SET"):
        call_command("createuser", "x-user", "--role", "viewer", "--password-from-env", "NOPE_NOT_SET")


def test_issuetoken_prints_a_token_the_api_accepts(db, capsys):
    call_command("createuser", "incident-bot", "--role", "operator")
    capsys.readouterr()
    call_command("issuetoken", "incident-bot", "--scope", "read")
    raw = capsys.readouterr().out.strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    me = client.get("/api/v1/me/").json()
    assert me == {"username": "incident-bot", "role": "operator", "token": "cli-incident-bot", "scopes": ["read"]}


@pytest.mark.parametrize("args", [["nobody"], ["someone", "--scope", "write-everything"]])
def test_issuetoken_errors_are_clear(db, args):
    call_command("createuser", "someone", "--role", "viewer")
    with pytest.raises(CommandError):
        call_command("issuetoken", *args)
