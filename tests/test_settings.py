"""Settings come from the environment and fail loudly, naming the variable."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(args, **env):
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "CELERY_BROKER_URL"}
    }
    base.update(env)
    base["DJANGO_SETTINGS_MODULE"] = "controlplane.settings.base"
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=base, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DEBUG": "0", "ALLOWED_HOSTS": "example.com"}, "SECRET_KEY"),
        ({"DEBUG": "0", "SECRET_KEY": "x" * 60}, "ALLOWED_HOSTS"),
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"DEBUG": "1", "DATABASE_URL": "mysql://u@h/db"}, "DATABASE_URL"),
        ({"DEBUG": "1", "CONTROLPLANE_PROVIDER": "aws"}, "CONTROLPLANE_PROVIDER"),
        ({"DEBUG": "1", "CONTROLPLANE_PROVIDER": "gcp"}, "GOOGLE_CLOUD_PROJECT"),
        ({"DEBUG": "1", "DB_CONN_MAX_AGE": "soon"}, "DB_CONN_MAX_AGE"),
        (
            {"DEBUG": "1", "DATABASE_URL": "postgres://postgres@127.0.0.1/db", "DB_PREPARED_STATEMENTS": "perhaps"},
            "DB_PREPARED_STATEMENTS",
        ),
    ],
)
def test_a_wrong_or_missing_value_fails_at_start_naming_the_variable(tmp_path, env, variable):
    result = _run(["check"], VAR_DIR=str(tmp_path), **env)
    assert result.returncode != 0
    assert variable in result.stderr


def _check_deploy(tmp_path, **env):
    return _run(
        ["check", "--deploy", "--fail-level", "WARNING"],
        DEBUG="0",
        SECRET_KEY="prod-" + "k3y-" * 15,
        ALLOWED_HOSTS="controlplane.example.com",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/controlplane",
        VAR_DIR=str(tmp_path),
        **env,
    )


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = _check_deploy(tmp_path, CACHE_URL="redis://127.0.0.1:6379/1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("cache_url", ["locmem://", ""])  # "" : neither CACHE_URL nor REDIS_URL set
def test_check_deploy_warns_when_rate_limits_count_per_process(tmp_path, cache_url):
    result = _check_deploy(tmp_path, CACHE_URL=cache_url, REDIS_URL="")
    assert result.returncode != 0
    assert "controlplane.W001" in result.stderr and "per process" in result.stderr
    assert "CACHE_URL" in result.stderr


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, {"server_side_binding": True, "prepare_threshold": 5}),
        ("0", {}),  # behind a pooler that cannot keep prepared statements: Django's client-side default
    ],
)
def test_postgresql_prepares_statements_unless_told_not_to(tmp_path, value, expected):
    env = {"DB_PREPARED_STATEMENTS": value} if value is not None else {}
    show = "from django.conf import settings; print(sorted(settings.DATABASES['default']['OPTIONS'].items()))"
    url = "postgres://postgres@127.0.0.1:5432/controlplane"
    result = _run(["shell", "-c", show], DEBUG="1", DATABASE_URL=url, VAR_DIR=str(tmp_path), **env)
    assert result.returncode == 0, result.stderr
    printed = result.stdout.strip().splitlines()[-1]  # after the shell's own line about its imports
    assert dict(ast.literal_eval(printed)) == {"application_name": "controlplane", **expected}


def test_the_embedded_defaults_need_no_server(tmp_path):
    result = _run(["check"], DEBUG="1", VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "celery" / "queue").is_dir()


def test_a_new_embedded_database_migrates(tmp_path):
    # `migrate` runs the database checks (stored schemas) before the tables exist.
    result = _run(["migrate", "--noinput"], DEBUG="1", VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "controlplane.sqlite3").is_file()


def test_beat_has_a_folder_for_its_schedule_with_a_server_broker_too(tmp_path):
    # With Redis (the production broker) nothing else creates VAR_DIR/celery, and beat crashes at
    # start without it.
    result = _run(["check"], DEBUG="1", VAR_DIR=str(tmp_path / "var"), CELERY_BROKER_URL="redis://127.0.0.1:6379/1")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "var" / "celery").is_dir()
    assert not (tmp_path / "var" / "celery" / "queue").exists()  # no filesystem-broker folders


SSO_ENV = {
    "OIDC_CLIENT_ID": "controlplane",
    "OIDC_ISSUER": "https://idp.example.com",
    "OIDC_AUTHORIZATION_ENDPOINT": "https://idp.example.com/authorize",
    "OIDC_TOKEN_ENDPOINT": "https://idp.example.com/token",
    "OIDC_USERINFO_ENDPOINT": "https://idp.example.com/userinfo",
    "OIDC_JWKS_URI": "https://idp.example.com/jwks",
    "IAP_AUDIENCE": "/projects/123/global/backendServices/456",
    "SSO_ROLE_RULES": "group:oncall=operator, domain:example.com=viewer",
    "LOCAL_PASSWORD_LOGIN": "0",
}


def test_check_deploy_is_clean_with_single_sign_on_and_passwords_off(tmp_path):
    result = _check_deploy(tmp_path, CACHE_URL="redis://127.0.0.1:6379/1", **SSO_ENV)
    assert result.returncode == 0, result.stdout + result.stderr


def test_oidc_without_its_endpoints_fails_at_start_naming_them(tmp_path):
    result = _run(["check"], VAR_DIR=str(tmp_path), DEBUG="1", OIDC_CLIENT_ID="controlplane")
    assert result.returncode != 0
    assert "OIDC_ISSUER" in result.stderr
