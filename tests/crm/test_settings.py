"""Production settings refuse to start without secrets and pass `check --deploy`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

from crm.settings.base import DEV_SECRET_KEY

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "crm.settings.production",
    "SECRET_KEY": "x7!kq2-" + "p" * 20 + "-Zr9#vM4@wL8$tN3^bH6&cJ1*fD5(gS0)",
    "JWT_SECRET": "jwt-secret-for-the-deploy-check-test-0123456789",
    "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "ALLOWED_HOSTS": "crm.example.com",
    "PUBLIC_BASE_URL": "https://crm.example.com",
    "EMAIL_URL": "smtp+tls://crm:mail-password@smtp.example.com:587",
    "METRICS_TOKEN": "metrics-token-for-the-deploy-check-0123456789",
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


def _refused(env: dict[str, str], *needles: str) -> None:
    result = _manage("check", env={**PRODUCTION_ENV, **env})
    assert result.returncode != 0, result.stdout
    assert "ImproperlyConfigured" in result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr[-2000:]


def test_production_refuses_the_development_webhook_secret_whatever_the_backend():
    # With the default local backend too: the development secret is in the repository, so
    # anyone could sign "complained" events with it.
    _refused(
        {"MESSAGING_WEBHOOK_SECRET": "dev-webhook-secret"},
        "MESSAGING_WEBHOOK_SECRET must not be the development secret",
    )
    _refused({"MESSAGING_WEBHOOK_SECRET": "short"}, "MESSAGING_WEBHOOK_SECRET must be at least 16")


def test_production_refuses_the_env_example_placeholders():
    _refused(
        {
            "SECRET_KEY": "replace-with-50-random-characters",
            "JWT_SECRET": "replace-with-at-least-32-random-characters",
            "MESSAGING_WEBHOOK_SECRET": "replace-with-a-shared-secret",
        },
        "SECRET_KEY is still the .env.example placeholder",
        "JWT_SECRET is still the .env.example placeholder",
        "MESSAGING_WEBHOOK_SECRET is still the .env.example placeholder",
    )
    _refused({"ENCRYPTION_KEYS": "replace-with-a-fernet-key"}, "key 1 is not a Fernet key")
    _refused(
        {"SECRET_KEY_FALLBACKS": DEV_SECRET_KEY},
        "SECRET_KEY_FALLBACKS must not contain the development key",
    )


def test_production_refuses_development_and_malformed_encryption_keys():
    dev_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    _refused(
        {"ENCRYPTION_KEYS": f"{PRODUCTION_ENV['ENCRYPTION_KEYS']},{dev_key}"},
        "ENCRYPTION_KEYS must not contain the development key",
    )
    _refused(
        {"ENCRYPTION_KEYS": f"{PRODUCTION_ENV['ENCRYPTION_KEYS']},not-a-fernet-key"},
        "ENCRYPTION_KEYS: key 2 is not a Fernet key",
    )


def test_production_refuses_a_public_base_url_recipients_cannot_reach():
    for url in (
        "http://127.0.0.1:8000",
        "https://localhost",
        "https://127.0.0.1",
        "https://[::1]:8443",
        "https://0.0.0.0",
        "https://10.0.0.5",
    ):
        _refused({"PUBLIC_BASE_URL": url}, "PUBLIC_BASE_URL")
    _refused({"PUBLIC_BASE_URL": "https://crm.localhost"}, "PUBLIC_BASE_URL points at")
    _refused({"PUBLIC_BASE_URL": "http://crm.example.com"}, "https://")
    _refused({"PUBLIC_BASE_URL": ""}, "PUBLIC_BASE_URL")


def test_production_refuses_an_email_backend_that_delivers_nothing_with_local_sending():
    _refused({"EMAIL_URL": "consolemail://"}, "EMAIL_URL must be an SMTP server", "console")
    _refused({"EMAIL_URL": "memorymail://"}, "EMAIL_URL must be an SMTP server", "locmem")
    # The http backend sends through the Messaging service: no email backend needed.
    http = _manage(
        "check",
        env={
            **PRODUCTION_ENV,
            "EMAIL_URL": "consolemail://",
            "MESSAGING_BACKEND": "http",
            "MESSAGING_URL": "https://messaging.internal",
            "MESSAGING_API_KEY": "k",
            "MESSAGING_WEBHOOK_SECRET": "a-real-secret-0123",
        },
    )
    assert http.returncode == 0, http.stderr


def test_production_refuses_a_missing_development_or_short_metrics_token():
    result = _manage("check", env={**PRODUCTION_ENV, "METRICS_TOKEN": ""})
    assert result.returncode != 0 and "METRICS_TOKEN" in result.stderr
    result = _manage("check", env={**PRODUCTION_ENV, "METRICS_TOKEN": "dev-metrics-token"})
    assert result.returncode != 0 and "METRICS_TOKEN" in result.stderr
    _refused({"METRICS_TOKEN": "short-token"}, "METRICS_TOKEN must be at least 32 characters")


def test_production_refuses_allowed_hosts_star():
    _refused({"ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS must name the hosts")
    _refused({"ALLOWED_HOSTS": "crm.example.com,*"}, "ALLOWED_HOSTS must name the hosts")


def test_without_a_webhook_secret_the_local_backend_turns_the_webhook_off():
    script = (
        "import django, json; django.setup()\n"
        "from django.test import Client\n"
        "r = Client(HTTP_HOST='crm.example.com').post('/api/v1/webhooks/messaging', "
        "b'{}', content_type='application/json', secure=True, "
        "HTTP_X_CRM_TIMESTAMP='1', HTTP_X_CRM_SIGNATURE='v1=00')\n"
        "print(r.status_code, json.loads(r.content)['error']['message'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
            **PRODUCTION_ENV,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "401 The webhook is disabled until MESSAGING_WEBHOOK_SECRET is set."
    )
