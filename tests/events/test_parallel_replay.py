"""Checklist A1: the same 10,000 events sent twice through REST, sequentially and then from
8 parallel clients: exactly 10,000 rows and activities, zero 5xx, every repeat reported as a
duplicate."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from crm.services import api_key_create
from customers.ingest import events_process
from customers.models import Activity, SyncLogEntry, SyncStatus
from tests.factories import TenantFactory

from .helpers import at

pytestmark = pytest.mark.django_db(transaction=True)
EVENTS = 10_000


def test_replays_from_parallel_clients_create_nothing_twice(live_server, monkeypatch):
    from customers import ingest

    monkeypatch.setattr(ingest, "_queue", lambda tenant, ids: None)  # processed below
    tenant = TenantFactory(slug="replay-a1")
    key = api_key_create(tenant=tenant, name="replayer").raw_key
    events = [
        {
            "id": f"a1-{n}",
            "type": "teetime.round.completed",
            "tenantId": tenant.slug,
            "timestamp": at(hours_ago=n % 500),
            "identity": {"email": f"p{n % 2000}@example.com"},
            "payload": {"roundId": f"R{n}"},
        }
        for n in range(EVENTS)
    ]
    batches = [events[i : i + 1_000] for i in range(0, EVENTS, 1_000)]
    headers = {"Authorization": f"Api-Key {key}"}
    url = f"{live_server.url}/api/v1/events"

    def post(batch):
        with requests.Session() as session:
            response = session.post(url, json={"events": batch}, headers=headers, timeout=60)
        return response.status_code, response.json()

    first = [post(batch) for batch in batches]  # sequentially
    with ThreadPoolExecutor(max_workers=8) as pool:  # then all again, 8 at once, twice over
        repeats = list(pool.map(post, batches * 2))

    assert {status for status, _ in first + repeats} == {202}
    assert sum(len(body["accepted"]) for _, body in first) == EVENTS
    assert sum(len(body["accepted"]) for _, body in repeats) == 0
    assert sum(len(body["duplicates"]) for _, body in repeats) == 2 * EVENTS
    assert SyncLogEntry.objects.filter(tenant=tenant).count() == EVENTS

    ids = list(SyncLogEntry.objects.filter(tenant=tenant).values_list("id", flat=True))
    for start in range(0, len(ids), 500):
        events_process(tenant=tenant, entry_ids=ids[start : start + 500])
    assert SyncLogEntry.objects.filter(tenant=tenant, status=SyncStatus.PROCESSED).count() == EVENTS
    assert Activity.objects.filter(tenant=tenant).count() == EVENTS
