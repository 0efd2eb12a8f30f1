"""Checklist A2: the same 10,000 events published twice onto the Celery ingest queue by 4
producers at once, consumed by a real worker: exactly 10,000 processed rows and activities,
no task failing on a unique key."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from crm.celery import app as celery_app
from customers.models import Activity, SyncLogEntry, SyncStatus
from tests.factories import TenantFactory
from tests.worker import celery_worker

from .helpers import at

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
EVENTS = 10_000


def test_events_published_twice_by_concurrent_producers_are_applied_once():
    tenant = TenantFactory(slug="replay-a2")
    events = [
        {
            "id": f"a2-{n}",
            "type": "teetime.booking.paid",
            "tenantId": tenant.slug,
            "timestamp": at(hours_ago=n % 300),
            "identity": {"email": f"p{n % 1500}@example.com"},
            "payload": {"bookingId": f"B{n}", "amount": "100.00", "currency": "ZAR"},
        }
        for n in range(EVENTS)
    ]
    batches = [events[i : i + 500] for i in range(0, EVENTS, 500)]
    with celery_worker(concurrency=2) as worker:
        with ThreadPoolExecutor(max_workers=4) as producers:
            list(
                producers.map(
                    lambda batch: celery_app.send_task("customers.ingest_events", args=[batch]),
                    batches * 2,
                )
            )
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            done = SyncLogEntry.objects.filter(tenant=tenant, status=SyncStatus.PROCESSED)
            if done.count() == EVENTS:
                break
            time.sleep(0.2)
        time.sleep(1)  # let any straggling duplicate task finish, so a double would show
        log = worker.log()
    assert SyncLogEntry.objects.filter(tenant=tenant).count() == EVENTS
    assert SyncLogEntry.objects.filter(tenant=tenant, status=SyncStatus.PROCESSED).count() == EVENTS
    assert Activity.objects.filter(tenant=tenant).count() == EVENTS
    assert "IntegrityError" not in log and "raised unexpected" not in log
    # Lifetime values count each payment once: 1500 people, 10,000 payments of R100.
    from django.db.models import Sum

    from customers.models import CustomerProfile

    total = CustomerProfile.objects.filter(tenant=tenant).aggregate(v=Sum("lifetime_value_minor"))
    assert total["v"] == EVENTS * 10_000
