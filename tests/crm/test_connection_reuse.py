"""A connection busy a moment ago skips the per-request health check; an idle one does not."""

from __future__ import annotations

import time

import pytest
from django.core.signals import request_finished, request_started
from django.db import connections

from crm import dbconn

pytestmark = pytest.mark.django_db

connection = connections["default"]


@pytest.fixture
def health_checks(monkeypatch):
    monkeypatch.setattr(connection, "health_check_enabled", True)
    # As a connection no request has used yet (earlier tests' requests did).
    monkeypatch.setattr(connection, dbconn._LAST_USED, None, raising=False)
    connection.ensure_connection()
    checks = []
    real = connection.is_usable

    def counted():
        checks.append(1)
        return real()

    monkeypatch.setattr(connection, "is_usable", counted)
    return checks


def _request() -> None:
    """A request as gunicorn runs it: Django's ``close_old_connections`` marks the kept
    connection unchecked (``health_check_done = False``), then our receivers run."""
    connection.health_check_done = False
    dbconn.skip_health_check_when_recently_used()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    dbconn.note_connection_use()


def test_the_receivers_are_connected():
    started = [r[1]() for r in request_started.receivers]
    finished = [r[1]() for r in request_finished.receivers]
    assert dbconn.skip_health_check_when_recently_used in started
    assert dbconn.note_connection_use in finished


def test_a_connection_used_a_moment_ago_is_not_checked_again(health_checks):
    _request()
    checks_after_first = len(health_checks)
    _request()
    _request()

    assert checks_after_first == 1  # never used by a request yet: checked
    assert len(health_checks) == checks_after_first


def test_an_idle_connection_is_checked_before_its_first_query(health_checks, monkeypatch):
    _request()
    before = len(health_checks)
    monkeypatch.setattr(dbconn, "HEALTH_CHECK_AFTER_IDLE", 0.0)
    time.sleep(0.01)
    _request()

    assert len(health_checks) == before + 1
