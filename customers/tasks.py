"""Celery tasks of the customers app: thin, JSON-only, idempotent; they call services.

Producers may publish events straight to the ingest queue instead of calling the REST API::

    celery_app.send_task("customers.ingest_events", args=[[event, ...]], queue="ingest")

Each event carries its ``tenantId`` (the tenant's slug); the task writes the sync log first,
exactly as the REST endpoint does, then processes the batch.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from crm.models import Tenant
from crm.tasks import TenantTask

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
def process_events(tenant: Tenant, entry_ids: list[int]) -> dict[str, int]:
    """Process a batch of sync-log rows. A database outage retries the task with backoff
    (and the sweep re-queues whatever is still pending after that)."""
    result = events_process(tenant=tenant, entry_ids=entry_ids)
    return vars(result)


@shared_task(name="customers.ingest_events", ignore_result=True)
def ingest_events(events: list[dict[str, Any]] | dict[str, Any]) -> dict[str, int]:
    """The queue way in: one event or a list, each naming its tenant by slug. Invalid events
    are logged with their errors (the REST endpoint is the way to get them answered)."""
    if isinstance(events, dict):
        events = [events]
    by_tenant: dict[str, list[Any]] = defaultdict(list)
    for event in events:
        slug = str(event.get("tenantId", "")) if isinstance(event, dict) else ""
        by_tenant[slug].append(event)
    tenants = {t.slug: t for t in Tenant.objects.filter(slug__in=by_tenant, is_active=True)}
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0}
    for slug, batch in by_tenant.items():
        tenant = tenants.get(slug)
        if tenant is None:
            logger.error("ingest: %s events for unknown or inactive tenant %r", len(batch), slug)
            totals["rejected"] += len(batch)
            continue
        result = events_ingest(tenant=tenant, raw_events=batch, via="queue")
        for rejection in result.rejected:
            logger.error("ingest: event %s rejected: %s", rejection.id, rejection.errors)
        totals["accepted"] += len(result.accepted)
        totals["duplicates"] += len(result.duplicates)
        totals["rejected"] += len(result.rejected)
    return totals


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
