"""Production settings refuse to start without secrets and pass `check --deploy`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "crm.settings.production",
    "SECRET_KEY": "x7!kq2-" + "p" * 20 + "-Zr9#vM4@wL8$tN3^bH6&cJ1*fD5(gS0)",
    "JWT_SECRET": "jwt-secret-for-the-deploy-check-test-0123456789",
    "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "ALLOWED_HOSTS": "crm.example.com",
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        # The test process allows async-unsafe ORM calls (for Playwright); production must not.
        env={**{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_reports_no_warnings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_refuses_to_start_without_its_secrets():
    env = {**PRODUCTION_ENV, "SECRET_KEY": "", "JWT_SECRET": "", "ENCRYPTION_KEYS": ""}

    result = _manage("check", env=env)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY, JWT_SECRET, ENCRYPTION_KEYS" in result.stderr


def test_a_malformed_value_fails_loudly():
    result = _manage("check", env={**PRODUCTION_ENV, "DATABASE_CONN_MAX_AGE": "soon"})

    assert result.returncode != 0
    assert "soon" in result.stderr


def test_messaging_settings_are_checked_at_start():
    unknown = _manage("check", env={**PRODUCTION_ENV, "MESSAGING_BACKEND": "carrier-pigeon"})
    assert unknown.returncode != 0
    assert "MESSAGING_BACKEND must be local or http" in unknown.stderr
    incomplete = _manage("check", env={**PRODUCTION_ENV, "MESSAGING_BACKEND": "http"})
    assert incomplete.returncode != 0
    assert "needs MESSAGING_URL and MESSAGING_API_KEY" in incomplete.stderr
    http = {
        **PRODUCTION_ENV,
        "MESSAGING_BACKEND": "http",
        "MESSAGING_URL": "https://messaging.internal",
        "MESSAGING_API_KEY": "k",
    }
    unsigned = _manage("check", env=http)
    assert unsigned.returncode != 0
    assert "needs MESSAGING_WEBHOOK_SECRET" in unsigned.stderr
    complete = _manage("check", env={**http, "MESSAGING_WEBHOOK_SECRET": "a-real-secret-0123"})
    assert complete.returncode == 0, complete.stderr
