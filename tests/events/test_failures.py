"""Poison events, retries, the sweep, replay (service, command)."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import OperationalError
from django.utils import timezone

from customers import handlers, ingest
from customers.ingest import MAX_ATTEMPTS, events_process, events_replay, events_requeue_stale
from customers.models import Activity, SyncLogEntry, SyncStatus

from .helpers import event, process_pending
from .helpers import ingest as ingest_events

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch):
    """Captures what would go to the broker: ``[(tenant, [entry ids])]``."""
    calls = []
    monkeypatch.setattr(ingest, "_queue", lambda tenant, ids: calls.append((tenant, list(ids))))
    return calls


@pytest.fixture
def poison_handicap(monkeypatch):
    """The handicap handler breaks on one particular value: a poison event."""
    original = handlers.handle_handicap

    def handler(tenant, items, now):
        if any(str(item.entry.payload["handicapIndex"]) == "13.0" for item in items):
            raise ValueError("cannot apply handicap 13.0")
        original(tenant, items, now)

    monkeypatch.setitem(handlers.HANDLERS, "teetime.handicap.updated", handler)


def _batch(tenant):
    return [
        event(
            tenant,
            "teetime.handicap.updated",
            {"teetimePlayerId": f"P{i}"},
            {"handicapIndex": f"{10 + i}.0"},
            id=f"h{i}",
        )
        for i in range(6)
    ]


def test_a_poison_event_does_not_stop_the_others(tenant_a, poison_handicap):
    ingest_events(tenant_a, *_batch(tenant_a))
    result = process_pending(tenant_a)
    assert (result.processed, result.retrying, result.failed) == (5, 1, 0)
    poison = SyncLogEntry.objects.get(tenant=tenant_a, event_id="h3")
    assert poison.status == SyncStatus.PENDING
    assert poison.attempts == 1
    assert "cannot apply handicap 13.0" in poison.error
    assert poison.next_attempt_at > timezone.now()
    assert not Activity.objects.filter(source_event_id="h3").exists()
    done = SyncLogEntry.objects.filter(tenant=tenant_a, status=SyncStatus.PROCESSED)
    assert sorted(done.values_list("event_id", flat=True)) == ["h0", "h1", "h2", "h4", "h5"]
    assert Activity.objects.filter(tenant=tenant_a).count() == 5


def test_a_poison_event_fails_for_good_after_bounded_attempts(tenant_a, poison_handicap):
    ingest_events(tenant_a, *_batch(tenant_a))
    entry = SyncLogEntry.objects.get(tenant=tenant_a, event_id="h3")
    for attempt in range(1, MAX_ATTEMPTS + 1):
        events_process(tenant=tenant_a, entry_ids=[entry.pk])
        entry.refresh_from_db()
        assert entry.attempts == attempt
    assert entry.status == SyncStatus.FAILED
    assert entry.next_attempt_at is None
    # Nothing more happens to a failed row until someone replays it.
    assert events_process(tenant=tenant_a, entry_ids=[entry.pk]).skipped == 1


def test_replay_puts_failed_events_back_and_they_are_processed(
    tenant_a, queued, django_capture_on_commit_callbacks
):
    ingest_events(tenant_a, *_batch(tenant_a))
    SyncLogEntry.objects.filter(event_id__in=["h1", "h2"]).update(
        status=SyncStatus.FAILED, attempts=MAX_ATTEMPTS, error="ValueError: boom"
    )
    SyncLogEntry.objects.filter(event_id="h0").update(status=SyncStatus.PROCESSED)
    with django_capture_on_commit_callbacks(execute=True):
        assert events_replay(tenant=tenant_a) == 2
    rows = SyncLogEntry.objects.filter(event_id__in=["h1", "h2"])
    assert {(r.status, r.attempts, r.error) for r in rows} == {(SyncStatus.PENDING, 0, "")}
    assert SyncLogEntry.objects.get(event_id="h0").status == SyncStatus.PROCESSED
    [(_, ids)] = queued
    assert events_process(tenant=tenant_a, entry_ids=ids).processed == 2
    assert Activity.objects.filter(source_event_id__in=["h1", "h2"]).count() == 2


def test_replay_command_filters_and_dry_runs(tenant_a, queued, capsys):
    ingest_events(
        tenant_a,
        *_batch(tenant_a),
        event(
            tenant_a,
            "teetime.round.completed",
            {"email": "r@example.com"},
            {"roundId": "R"},
            id="r1",
        ),
    )
    SyncLogEntry.objects.filter(tenant=tenant_a).update(status=SyncStatus.FAILED, error="x")
    call_command(
        "replay_events", tenant=tenant_a.slug, type="teetime.round.completed", dry_run=True
    )
    assert "1 failed events would be replayed" in capsys.readouterr().out
    assert not SyncLogEntry.objects.filter(status=SyncStatus.PENDING).exists()
    call_command("replay_events", tenant=tenant_a.slug, event_ids=["h1", "h2"])
    assert "Replayed 2 failed events" in capsys.readouterr().out
    pending = SyncLogEntry.objects.filter(status=SyncStatus.PENDING)
    assert sorted(pending.values_list("event_id", flat=True)) == ["h1", "h2"]


def test_replay_command_refuses_an_unknown_tenant(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No tenant"):
        call_command("replay_events", tenant="nope")


def test_the_sweep_requeues_lost_and_due_rows_only(
    tenant_a, queued, django_capture_on_commit_callbacks
):
    ingest_events(tenant_a, *_batch(tenant_a))
    now = timezone.now()
    rows = {r.event_id: r for r in SyncLogEntry.objects.filter(tenant=tenant_a)}
    # h0: queued just now (its message is on its way): left alone.
    # h1: queued 10 minutes ago and still pending: its message was lost.
    SyncLogEntry.objects.filter(pk=rows["h1"].pk).update(queued_at=now - timedelta(minutes=10))
    # h2: failed once, retry not due yet; h3: failed once, retry due.
    SyncLogEntry.objects.filter(pk=rows["h2"].pk).update(
        queued_at=None, next_attempt_at=now + timedelta(minutes=3)
    )
    SyncLogEntry.objects.filter(pk=rows["h3"].pk).update(
        queued_at=None, next_attempt_at=now - timedelta(seconds=1)
    )
    # h4, h5: processed.
    SyncLogEntry.objects.filter(pk__in=[rows["h4"].pk, rows["h5"].pk]).update(
        status=SyncStatus.PROCESSED, queued_at=now - timedelta(hours=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert events_requeue_stale(now=now) == 2
    assert queued == [(tenant_a, sorted([rows["h1"].pk, rows["h3"].pk]))]
    # Queued again means "queued now": the next sweep leaves them alone.
    queued.clear()
    assert events_requeue_stale(now=now) == 0


def test_a_database_outage_propagates_so_the_task_retries(tenant_a, monkeypatch):
    from customers.tasks import process_events

    ingest_events(tenant_a, *_batch(tenant_a))

    def outage(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(ingest, "_apply", outage)
    ids = list(SyncLogEntry.objects.values_list("id", flat=True))
    with pytest.raises(OperationalError):
        events_process(tenant=tenant_a, entry_ids=ids)
    # Nothing was marked failed: the rows wait for the retry (the attempt is counted).
    assert set(SyncLogEntry.objects.values_list("status", "attempts", "error")) == {
        (SyncStatus.PENDING, 1, "")
    }
    assert OperationalError in process_events.autoretry_for
    assert process_events.retry_backoff


def test_a_broker_outage_after_commit_still_answers_202_and_the_sweep_catches_up(
    api_a, tenant_a, monkeypatch, django_capture_on_commit_callbacks
):
    from kombu.exceptions import OperationalError as BrokerDown

    from customers.tasks import process_events

    def down(*args, **kwargs):
        raise BrokerDown("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(process_events, "delay", down)
    body = event(
        tenant_a,
        "teetime.round.completed",
        {"email": "b@example.com"},
        {"roundId": "R1"},
        id="during-outage",
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = api_a.post("/api/v1/events", body, format="json")
    assert response.status_code == 202
    assert response.json()["accepted"] == ["during-outage"]
    entry = SyncLogEntry.objects.get(event_id="during-outage")
    assert entry.status == SyncStatus.PENDING
    # Five minutes later the sweep queues it (the broker is back).
    calls = []
    monkeypatch.setattr(ingest, "_queue", lambda tenant, ids: calls.append(list(ids)))
    with django_capture_on_commit_callbacks(execute=True):
        events_requeue_stale(now=timezone.now() + timedelta(minutes=6))
    assert calls == [[entry.pk]]


def test_an_event_that_kills_its_worker_is_isolated_and_given_up(tenant_a, monkeypatch):
    """Checklist A14: processing one event kills the worker process every time (simulated
    by SystemExit, which nothing in the pipeline catches). Attempts counted before the work
    survive the crash; redeliveries go row by row; the killer ends FAILED after its bounded
    attempts, the others are processed."""
    original = handlers.handle_handicap

    def killer(tenant, items, now):
        if any(item.entry.event_id == "h2" for item in items):
            raise SystemExit("worker killed")
        original(tenant, items, now)

    monkeypatch.setitem(handlers.HANDLERS, "teetime.handicap.updated", killer)
    ingest_events(tenant_a, *_batch(tenant_a))
    ids = list(SyncLogEntry.objects.order_by("id").values_list("id", flat=True))
    deliveries = 0
    while SyncLogEntry.objects.filter(status=SyncStatus.PENDING).exists():
        deliveries += 1
        assert deliveries <= MAX_ATTEMPTS + 2, "never gave up"
        # The task, delivered again; SystemExit: the worker died and Celery redelivers.
        with contextlib.suppress(SystemExit):
            events_process(tenant=tenant_a, entry_ids=ids)
    killed = SyncLogEntry.objects.get(event_id="h2")
    assert killed.status == SyncStatus.FAILED and "Gave up after" in killed.error
    others = SyncLogEntry.objects.exclude(event_id="h2")
    assert set(others.values_list("status", flat=True)) == {SyncStatus.PROCESSED}
    assert max(others.values_list("attempts", flat=True)) <= 2
    assert Activity.objects.filter(tenant=tenant_a).count() == 5
