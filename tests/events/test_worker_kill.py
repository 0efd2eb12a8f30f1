"""A real Celery worker on Redis processes 10,000 events; ``kill -9`` halfway loses nothing
and doubles nothing."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import timedelta

import pytest
from django.utils import timezone

from customers.ingest import events_ingest, events_requeue_stale
from customers.models import Activity, CustomerProfile, IdentityAlias, SyncLogEntry, SyncStatus
from tests.factories import TenantFactory
from tests.worker import WorkerProcess, celery_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

PEOPLE = 2_000
EVENTS = 10_000


def _events(tenant):
    """Five events per person: bookings paid (amounts known), rounds, consent."""
    events, expected_value = [], defaultdict(int)
    now = timezone.now()
    for n in range(EVENTS):
        who = n % PEOPLE
        identity = {"email": f"player{who}@example.com"}
        when = (now - timedelta(minutes=n)).isoformat()
        kind = (n // PEOPLE) % 3
        if kind == 0:
            amount = 100 + who % 50
            expected_value[identity["email"]] += amount * 100
            payload = {"bookingId": f"B{n}", "amount": str(amount), "currency": "ZAR"}
            type_ = "teetime.booking.paid"
        elif kind == 1:
            payload, type_ = {"roundId": f"R{n}"}, "teetime.round.completed"
        else:
            payload, type_ = {"emailOptIn": n % 2 == 0}, "contactPreference.updated"
        events.append(
            {
                "id": f"e{n}",
                "type": type_,
                "tenantId": tenant.slug,
                "timestamp": when,
                "identity": identity,
                "payload": payload,
            }
        )
    return events, expected_value


def _processed(tenant) -> int:
    return SyncLogEntry.objects.filter(tenant=tenant, status=SyncStatus.PROCESSED).count()


def _wait(predicate, timeout: float, what: str, worker=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    log = worker.log()[-3000:] if worker else ""
    raise AssertionError(f"timed out waiting for {what}\n{log}")


def test_kill_9_halfway_then_restart_processes_every_event_exactly_once():
    tenant = TenantFactory(slug="kill-test")
    events, expected_value = _events(tenant)
    with celery_worker(concurrency=2) as worker:
        for start in range(0, EVENTS, 1_000):
            result = events_ingest(tenant=tenant, raw_events=events[start : start + 1_000])
            assert len(result.accepted) == 1_000
        assert SyncLogEntry.objects.filter(tenant=tenant).count() == EVENTS
        _wait(lambda: _processed(tenant) >= EVENTS * 0.3, 120, "the first events", worker)
        worker.kill_hard()  # main process and pool children, mid-flight
        halfway = _processed(tenant)
        assert 0 < halfway < EVENTS, "the kill should land mid-run"

        # A new worker on the same queue; the messages the dead one held unacked come back
        # only after the broker's visibility timeout, so the sweep re-queues their rows.
        restarted = WorkerProcess(worker.queue)
        restarted.start()
        try:
            events_requeue_stale(stale_after=timedelta(0))
            _wait(lambda: _processed(tenant) == EVENTS, 180, "every event", restarted)
        finally:
            restarted.stop()

    assert SyncLogEntry.objects.filter(tenant=tenant).count() == EVENTS
    assert not SyncLogEntry.objects.filter(tenant=tenant).exclude(status=SyncStatus.PROCESSED)
    assert Activity.objects.filter(tenant=tenant).count() == EVENTS
    assert CustomerProfile.objects.filter(tenant=tenant).count() == PEOPLE
    assert IdentityAlias.objects.filter(tenant=tenant).count() == PEOPLE
    values = dict(
        IdentityAlias.objects.filter(tenant=tenant).values_list(
            "value", "profile__lifetime_value_minor"
        )
    )
    assert values == dict(expected_value) | {
        email: 0 for email in values if email not in expected_value
    }
    # Every person's 30-day count is their number of activities in the window.
    golfer = CustomerProfile.objects.get(tenant=tenant, email="player0@example.com")
    in_window = Activity.objects.filter(
        customer=golfer, occurred_at__gt=timezone.now() - timedelta(days=30)
    ).count()
    assert golfer.activity_count_30d == in_window == 5
