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
    assert me == {
        "username": "incident-bot",
        "role": "operator",
        "token": "cli-incident-bot",
        "scopes": ["read"],
        "time_display": "utc",
    }


@pytest.mark.parametrize("args", [["nobody"], ["someone", "--scope", "write-everything"]])
def test_issuetoken_errors_are_clear(db, args):
    call_command("createuser", "someone", "--role", "viewer")
    with pytest.raises(CommandError):
        call_command("issuetoken", *args)


def test_provision_apply_says_what_it_changed_instead_of_repeating_the_drift(db, capsys):
    from tests.factories import WorkloadClassFactory

    workload_class = WorkloadClassFactory(slug="provisioned", message_retention_seconds=86400, max_delivery_attempts=5)
    call_command("provision", "provisioned")
    workload_class.message_retention_seconds = 3600
    workload_class.max_delivery_attempts = 7
    workload_class.save()
    capsys.readouterr()

    call_command("provision", "provisioned")
    found = capsys.readouterr().out
    assert "drift:" in found and "message_retention_duration: want 3600, found 86400" in found

    call_command("provision", "provisioned", "--apply")
    applied = capsys.readouterr().out
    assert "changed:" in applied and "message_retention_duration: 86400 -> 3600" in applied
    assert "dead_letter_policy.max_delivery_attempts: 5 -> 7" in applied
    assert "drift:" not in applied  # nothing is left to report
    event = AuditEvent.objects.filter(action="workload_class.provision").latest("pk")
    assert any("message_retention_duration: 86400 -> 3600" in line for line in event.extra["changed"])

    call_command("provision", "provisioned")
    assert "drift:" not in capsys.readouterr().out
