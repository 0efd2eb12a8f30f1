"""One event PostgreSQL cannot store is rejected on its own (index, path, reason); the rest
of its batch is accepted. Through the REST endpoint and through the Celery ingest task."""

from __future__ import annotations

import json

import pytest
from django.db import OperationalError, connection

from customers import events, ingest
from customers.models import Activity, SyncLogEntry
from customers.tasks import INGEST_MAX_RETRIES, ingest_events

from .helpers import event, process_pending

pytestmark = pytest.mark.django_db
URL = "/api/v1/events"


def _good(tenant, id="good-1"):
    return event(
        tenant, "teetime.round.completed", {"email": "g@example.com"}, {"roundId": "R1"}, id=id
    )


def _round(tenant, *, identity=None, payload=None, **extra):
    return event(
        tenant,
        extra.pop("type", "teetime.round.completed"),
        identity if identity is not None else {"email": "b@example.com"},
        payload if payload is not None else {"roundId": "R9"},
        **extra,
    )


BAD = {
    "NUL in the id": (dict(id="bad\u0000id"), "id"),
    "NUL in an identity value": (
        dict(identity={"teetimePlayerId": "P\u00001"}),
        "identity.teetimePlayerId",
    ),
    "NUL in an external id's key": (
        dict(identity={"externalIds": {"scl\u0000": "7"}}),
        "identity.externalIds.scl\\u0000",
    ),
    "NUL in a payload string": (dict(payload={"roundId": "R1", "note": "a\u0000"}), "payload.note"),
    "NUL in a nested payload key": (
        dict(payload={"roundId": "R1", "extra": {"deep": [{"k\u0000": 1}]}}),
        "payload.extra.deep.k\\u0000",
    ),
    "an offset PostgreSQL cannot store": (dict(timestamp="2026-01-01T00:00:00+16:00"), "timestamp"),
    "a moment before year 1 in UTC": (dict(timestamp="0001-01-01T00:00:00+02:00"), "timestamp"),
    "a service name longer than the source column": (dict(type="s" * 40 + ".round.done"), "type"),
    "nesting deeper than an event may": (
        dict(payload={"roundId": "R1", "x": json.loads("[" * 40 + "]" * 40)}),
        "payload.x",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_value_rejects_its_event_only(api_a, tenant_a, case):
    changes, path = BAD[case]
    body = [_good(tenant_a), _round(tenant_a, **changes)]
    response = api_a.post(URL, body, format="json")
    assert response.status_code == 202, response.content
    result = response.json()
    assert result["accepted"] == ["good-1"]
    [rejection] = result["rejected"]
    assert rejection["index"] == 1
    assert path in rejection["errors"], rejection["errors"]
    assert list(SyncLogEntry.objects.values_list("event_id", flat=True)) == ["good-1"]


def test_a_lone_surrogate_is_rejected_and_the_id_echoed_escaped(api_a, tenant_a):
    # Sent as a producer would: JSON's own escape of an unpaired surrogate.
    bad = json.dumps(_round(tenant_a, id="x")).replace('"id": "x"', '"id": "x\\ud800"')
    body = f"[{json.dumps(_good(tenant_a))}, {bad}]"
    response = api_a.generic("POST", URL, body, content_type="application/json")
    assert response.status_code == 202
    [rejection] = response.json()["rejected"]
    assert rejection["id"] == "x\\ud800"
    assert "id" in rejection["errors"]
    assert SyncLogEntry.objects.count() == 1


def test_the_queue_rejects_only_the_bad_event(tenant_a, queued):
    body = [
        _good(tenant_a),
        _round(tenant_a, id="bad\u0000"),
        _round(tenant_a, payload={"roundId": "R", "x": float("nan")}),
    ]
    totals = ingest_events.apply(args=[body]).get()
    assert totals == {"accepted": 1, "duplicates": 0, "rejected": 2}
    assert list(SyncLogEntry.objects.values_list("event_id", flat=True)) == ["good-1"]


@pytest.fixture
def queued(monkeypatch):
    calls = []
    monkeypatch.setattr(ingest, "_queue", lambda tenant, ids: calls.append(list(ids)))
    return calls


@pytest.mark.parametrize("spelling", [str, lambda pk: str(pk).upper()])
def test_the_queue_accepts_the_tenant_by_id(tenant_a, tenant_b, spelling):
    body = [_good(tenant_a) | {"tenantId": spelling(tenant_a.pk)}, _good(tenant_b, id="b-1")]
    totals = ingest_events.apply(args=[body]).get()
    assert totals == {"accepted": 2, "duplicates": 0, "rejected": 0}
    assert SyncLogEntry.objects.get(event_id="good-1").tenant == tenant_a
    assert SyncLogEntry.objects.get(event_id="b-1").tenant == tenant_b


def test_the_queue_rejects_an_unknown_tenant_and_keeps_the_others(tenant_a):
    body = [_good(tenant_a) | {"tenantId": "nobody"}, _good(tenant_a, id="g2")]
    assert ingest_events.apply(args=[body]).get()["rejected"] == 1
    assert list(SyncLogEntry.objects.values_list("event_id", flat=True)) == ["g2"]


def test_a_database_outage_retries_the_queue_task_until_the_events_are_in(
    tenant_a, monkeypatch, django_capture_on_commit_callbacks, queued
):
    """The database refuses the first queries (as during a failover): the task asks for a
    retry with backoff instead of acknowledging a message it did not write; once the
    database is back the events are written, queued and processed exactly once."""
    refused = []

    def database_down(execute, sql, params, many, context):
        if len(refused) < 3:
            refused.append(sql)
            raise OperationalError("connection to server at 127.0.0.1, port 5432 failed")
        return execute(sql, params, many, context)

    retries = []
    original_retry = ingest_events.retry

    def retry(*args, **kwargs):
        retries.append(kwargs.get("countdown"))
        return original_retry(*args, **kwargs)

    monkeypatch.setattr(ingest_events, "retry", retry)
    body = [_good(tenant_a), _good(tenant_a, id="good-2")]
    with (
        django_capture_on_commit_callbacks(execute=True),
        connection.execute_wrapper(database_down),
    ):
        totals = ingest_events.apply(args=[body]).get()
    assert len(refused) == 3
    assert len(retries) == 3 and all(countdown is not None for countdown in retries)
    assert totals == {"accepted": 2, "duplicates": 0, "rejected": 0}
    assert ingest_events.max_retries == INGEST_MAX_RETRIES >= 30
    [ids] = queued
    assert sorted(SyncLogEntry.objects.values_list("id", flat=True)) == sorted(ids)
    assert process_pending(tenant_a).processed == 2
    assert Activity.objects.filter(tenant=tenant_a).count() == 2
    # Delivered again (a retry that raced the first success): duplicates, nothing twice.
    assert ingest_events.apply(args=[body]).get()["duplicates"] == 2
    assert process_pending(tenant_a).processed == 0
    assert Activity.objects.filter(tenant=tenant_a).count() == 2


def test_a_value_postgresql_refuses_past_validation_rejects_only_its_event(
    api_a, tenant_a, monkeypatch
):
    """The safety net under the validation: with the storability check switched off, the
    NUL reaches PostgreSQL, which refuses the batch's INSERT; the events are then written one
    by one and only the refused one is rejected."""
    monkeypatch.setattr(events, "_unstorable_strings", lambda raw, errors: None)
    body = [_good(tenant_a), _round(tenant_a, id="bad\u0000id"), _good(tenant_a, id="good-2")]
    response = api_a.post(URL, body, format="json")
    assert response.status_code == 202
    result = response.json()
    assert result["accepted"] == ["good-1", "good-2"]
    [rejection] = result["rejected"]
    assert rejection["index"] == 1
    assert "NUL" in rejection["errors"]["event"][0]
    assert sorted(SyncLogEntry.objects.values_list("event_id", flat=True)) == ["good-1", "good-2"]
