"""Probes: /healthz answers while the process runs; /readyz only when PostgreSQL and the
broker and cache (Redis) do, naming each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crm.tasks import beat_heartbeat
from tests.worker import subprocess_database_url

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import django, json
django.setup()
from django.test import Client
response = Client().get("/readyz")
print(json.dumps({"status": response.status_code, "body": response.json()}))
"""


def _readyz_in_a_process(**env_overrides: str) -> dict:
    """Runs the real app in a fresh process whose servers are the ones given."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "crm.settings.test", **env_overrides}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.django_db
def test_healthz_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_200_when_database_and_redis_answer(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "broker": "ok", "cache": "ok"}
    assert set(body["took_ms"]) == {"database", "broker", "cache"}
    assert body["beat_last_seen"] is None


@pytest.mark.django_db
def test_readyz_shows_the_last_beat_heartbeat(client):
    ran_at = beat_heartbeat()

    assert client.get("/readyz").json()["beat_last_seen"] == ran_at


def test_readyz_is_503_when_the_database_is_unreachable():
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    result = _readyz_in_a_process(DATABASE_URL="postgres://postgres@127.0.0.1:1/crm")

    assert result["status"] == 503
    assert result["body"]["status"] == "unavailable"
    assert result["body"]["checks"] == {"database": "unavailable", "broker": "ok", "cache": "ok"}


@pytest.mark.django_db
def test_readyz_is_503_when_redis_is_unreachable():
    # The process uses the test database (which exists) and a Redis nobody listens on.
    result = _readyz_in_a_process(
        REDIS_URL="redis://127.0.0.1:1/0", DATABASE_URL=subprocess_database_url()
    )

    assert result["status"] == 503
    assert result["body"]["checks"] == {
        "database": "ok",
        "broker": "unavailable",
        "cache": "unavailable",
    }
