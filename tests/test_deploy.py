"""Production settings (issue 10): secrets fail closed, HTTPS by default, a clean
`check --deploy` with the documented environment, a trusted-proxy switch and a
Permissions-Policy header."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.test import override_settings
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[1]


def production_env(tmp_path: Path, **changes: str) -> dict[str, str]:
    """README's documented production environment, on a throwaway SQLite file."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("BANANAWEB_", "DJANGO_", "DATABASE_URL", "SECRET_KEY"))
    }
    env |= {
        "DJANGO_SETTINGS_MODULE": "bananaweb.settings",
        "DEBUG": "0",
        "SECRET_KEY": "k" * 10 + Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "bananaweb.example.com",
        "BANANAWEB_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "BANANAWEB_VAR_DIR": str(tmp_path / "var"),
    }
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_documented_production_environment_passes_check_deploy(tmp_path):
    done = manage(
        production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


@pytest.mark.parametrize(
    ("missing", "words"),
    [
        ("SECRET_KEY", "SECRET_KEY is not set"),
        ("BANANAWEB_ENCRYPTION_KEYS", "BANANAWEB_ENCRYPTION_KEYS is not set"),
    ],
)
def test_a_missing_secret_stops_the_start(tmp_path, missing, words):
    done = manage(production_env(tmp_path, **{missing: None}), "check")
    assert done.returncode != 0
    assert words in done.stderr
    assert "dev-only" not in done.stdout + done.stderr


def test_debug_alone_gives_no_development_keys(tmp_path):
    done = manage(production_env(tmp_path, DEBUG="1", SECRET_KEY=None), "check")
    assert done.returncode != 0 and "SECRET_KEY is not set" in done.stderr


def test_check_deploy_refuses_the_development_switch(tmp_path):
    env = production_env(tmp_path, BANANAWEB_DEV="1", SECRET_KEY=None)
    done = manage(env, "check", "--deploy")
    assert done.returncode != 0
    assert "bananaweb.E001" in done.stderr + done.stdout


def test_production_defaults_are_https_only(tmp_path):
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, "
        "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "getattr(s, 'SECURE_PROXY_SSL_HEADER', None)]))"
    )
    env = production_env(tmp_path, BANANAWEB_PROXY_SSL_HEADER="X-Forwarded-Proto")
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        '[true, 31536000, true, true, ["HTTP_X_FORWARDED_PROTO", "https"]]'
    )


def test_every_answer_carries_a_permissions_policy(client, db):
    policy = client.get(reverse("login"))["Permissions-Policy"]
    assert "camera=()" in policy and "geolocation=()" in policy


@override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
def test_behind_a_declared_proxy_the_urls_handed_out_are_https(client_logged_in):
    page = client_logged_in.get(
        reverse("api-tokens"),
        headers={"X-Forwarded-Proto": "https"},
        SERVER_PORT="443",  # what the proxy forwards
    ).content.decode()
    assert "https://testserver/api" in page
    assert "http://testserver/api" not in page
