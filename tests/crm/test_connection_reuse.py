"""A connection busy a moment ago skips the per-request health check; an idle one does not."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
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


def test_the_task_receivers_are_connected():
    from celery.signals import task_postrun, task_prerun

    assert dbconn.task_started in [r[1]() for r in task_prerun.receivers]
    assert dbconn.task_finished in [r[1]() for r in task_postrun.receivers]


def _worker_backends() -> set[int]:
    """The test database's client backends other than this process's own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        return {pid for (pid,) in cursor.fetchall()}


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_keeps_its_database_connection_from_one_task_to_the_next():
    """Celery's Django fixup closed the connection around every task (a new PostgreSQL
    backend for each batch of events); the worker now keeps it, as a web worker does."""
    from django.utils import timezone

    from customers.ingest import events_ingest
    from customers.models import SyncLogEntry, SyncStatus
    from tests.factories import TenantFactory
    from tests.worker import celery_worker

    tenant = TenantFactory()
    backends = []
    with celery_worker(concurrency=1):
        for n in range(3):
            events_ingest(
                tenant=tenant,
                raw_events=[
                    {
                        "id": f"reuse-{n}",
                        "type": "teetime.round.completed",
                        "tenantId": tenant.slug,
                        "timestamp": timezone.now().isoformat(),
                        "identity": {"email": f"player{n}@example.com"},
                        "payload": {"roundId": f"R{n}"},
                    }
                ],
            )
            deadline = time.monotonic() + 60
            while (
                SyncLogEntry.objects.filter(tenant=tenant, status=SyncStatus.PROCESSED).count() <= n
            ):
                assert time.monotonic() < deadline, "the worker did not process the event"
                time.sleep(0.05)
            backends.append(_worker_backends())

    if settings.DATABASE_POOLER:
        # Through PgBouncer (make test-pgbouncer) the worker's kept connection is to the
        # pooler, and PostgreSQL sees the pooler's server connections, handed to any client
        # per transaction: the three tasks above ran on it; which backend served them says
        # nothing. The direct run (make test) checks the backend.
        return
    assert backends[0]  # the pool process's connection, open after its task
    assert backends[0] == backends[1] == backends[2]
