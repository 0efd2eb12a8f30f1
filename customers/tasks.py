"""Celery tasks of the customers app: thin, JSON-only, idempotent; they call services.

Producers may publish events straight to the ingest queue instead of calling the REST API::

    celery_app.send_task("customers.ingest_events", args=[[event, ...]], queue="ingest")

Each event carries its ``tenantId`` (the tenant's slug or id); the task writes the sync log
first, exactly as the REST endpoint does, then queues the processing.

A database outage does not lose the message: the task is retried with exponential backoff
(2 s doubling up to 10 minutes between tries, ``INGEST_MAX_RETRIES`` tries: several hours)
until the database is back. Events written before the outage come back as duplicates.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError
from django.db.models import Q
from django.utils import timezone

from crm.models import Tenant
from crm.tasks import TenantTask

from .events import storable_text
from .handlers import activity_count_recompute
from .ingest import events_ingest, events_process, events_requeue_stale

logger = logging.getLogger(__name__)


@shared_task(
    base=TenantTask,
    name="customers.process_events",
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=12,
)
def process_events(tenant: Tenant, entry_ids: list[int], defer: bool = True) -> dict[str, int]:
    """Process a batch of sync-log rows. A database outage retries the task with backoff
    (and the sweep re-queues whatever is still pending after that). ``defer`` is off for
    rows a batch deferred once (``customers.ingest._NEW_PERSON_LOCK_SQL``)."""
    result = events_process(tenant=tenant, entry_ids=entry_ids, defer=defer)
    return vars(result)


# Backoff 2, 4, 8 ... s, at most 10 minutes apart (full jitter): 48 tries span hours, enough
# for a database failover or restart; a message is dropped (logged) only after all of them.
INGEST_MAX_RETRIES = 48


@shared_task(
    name="customers.ingest_events",
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=INGEST_MAX_RETRIES,
)
def ingest_events(events: list[dict[str, Any]] | dict[str, Any]) -> dict[str, int]:
    """The queue way in: one event or a list, each naming its tenant by slug or id. Invalid
    events are logged with their errors (the REST endpoint is the way to get them answered);
    the valid ones are ingested, each event judged on its own."""
    if isinstance(events, dict):
        events = [events]
    if not isinstance(events, list):
        logger.error("ingest: expected an event or a list of events, got %s", type(events))
        return {"accepted": 0, "duplicates": 0, "rejected": 0}
    tenants = _tenants_by_reference({_tenant_ref(event) for event in events if _tenant_ref(event)})
    by_tenant: dict[Any, list[Any]] = defaultdict(list)
    unknown: dict[str, int] = defaultdict(int)
    for event in events:
        ref = _tenant_ref(event)
        tenant = tenants.get(ref)
        if tenant is None:
            unknown[ref] += 1
        else:
            by_tenant[tenant].append(event)
    totals = {"accepted": 0, "duplicates": 0, "rejected": sum(unknown.values())}
    for ref, count in unknown.items():
        logger.error("ingest: %s events for unknown or inactive tenant %r", count, ref)
    for tenant, batch in by_tenant.items():
        result = events_ingest(tenant=tenant, raw_events=batch, via="queue")
        for rejection in result.rejected:
            logger.error("ingest: event %s rejected: %s", rejection.id, rejection.errors)
        totals["accepted"] += len(result.accepted)
        totals["duplicates"] += len(result.duplicates)
        totals["rejected"] += len(result.rejected)
    return totals


def _tenant_ref(event: Any) -> str:
    ref = event.get("tenantId") if isinstance(event, dict) else None
    return ref.strip() if isinstance(ref, str) and storable_text(ref) else ""


def _tenants_by_reference(refs: set[str]) -> dict[str, Tenant]:
    """``{reference: tenant}`` for the active tenants named by slug or by id (UUID)."""
    ids: dict[uuid.UUID, list[str]] = defaultdict(list)
    for ref in refs:
        try:
            ids[uuid.UUID(ref)].append(ref)
        except ValueError:
            continue
    found = Tenant.objects.filter(Q(slug__in=refs) | Q(pk__in=list(ids)), is_active=True)
    tenants: dict[str, Tenant] = {}
    for tenant in found:
        if tenant.slug in refs:
            tenants[tenant.slug] = tenant
        for ref in ids.get(tenant.pk, ()):
            tenants[ref] = tenant
    return tenants


@shared_task(name="customers.requeue_stale_events", ignore_result=True)
def requeue_stale_events() -> int:
    """Beat, every minute: events whose message was lost, or whose retry time has come."""
    return events_requeue_stale()


@shared_task(name="customers.recompute_activity_counts", ignore_result=True)
def recompute_activity_counts() -> int:
    """Beat, nightly: the true rolling 30-day activity count of every profile."""
    changed = 0
    now = timezone.now()
    for tenant in Tenant.objects.filter(is_active=True).order_by("slug"):
        changed += activity_count_recompute(tenant=tenant, now=now)
    return changed
