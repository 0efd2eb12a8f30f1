"""Helpers of the event pipeline tests."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from django.utils import timezone

from customers.ingest import events_ingest, events_process
from customers.models import SyncLogEntry, SyncStatus

_ids = itertools.count(1)


def at(days_ago: float = 0, hours_ago: float = 0) -> str:
    return (timezone.now() - timedelta(days=days_ago, hours=hours_ago)).isoformat()


def event(tenant, type: str, identity: dict | None = None, payload: dict | None = None, **extra):
    """An envelope as a producer sends it."""
    body = {
        "id": extra.pop("id", f"evt-{next(_ids)}"),
        "type": type,
        "tenantId": tenant.slug,
        "timestamp": extra.pop("timestamp", at()),
        "payload": payload or {},
    }
    if identity is not None:
        body["identity"] = identity
    body.update(extra)
    return body


def ingest(tenant, *events):
    return events_ingest(tenant=tenant, raw_events=list(events))


def process_pending(tenant):
    """What the worker does: process every pending row of the tenant, in one batch."""
    ids = list(
        SyncLogEntry.objects.for_tenant(tenant)
        .filter(status=SyncStatus.PENDING)
        .order_by("id")
        .values_list("id", flat=True)
    )
    return events_process(tenant=tenant, entry_ids=ids)


def run(tenant, *events):
    result = ingest(tenant, *events)
    process_pending(tenant)
    return result


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)
