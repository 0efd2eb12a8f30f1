"""The event pipeline's series for ``/metrics`` (registered in ``CustomersConfig.ready``):
how far ingestion is behind, read from the sync log at scrape time."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import Count, Min
from prometheus_client.core import Metric

from crm.metrics import backlog_metrics

from .models import SyncLogEntry, SyncStatus


def ingest_metrics(*, now: datetime) -> Iterable[Metric]:
    """Events received and not yet applied (``PENDING``: queued, running, or waiting for a
    retry) and the age of the oldest: the ingestion lag. All tenants together; the query
    reads the pending rows only (``synclog_pending_idx``), a small set while workers keep up."""
    pending = SyncLogEntry.objects.filter(status=SyncStatus.PENDING).aggregate(
        n=Count("id"), oldest=Min("created_at")
    )
    return backlog_metrics(
        count=("crm_events_pending", "Events received and not yet processed."),
        age=(
            "crm_events_oldest_pending_age_seconds",
            "Age of the oldest event not yet processed (0 when none): the ingestion lag.",
        ),
        n=pending["n"],
        oldest=pending["oldest"],
        now=now,
    )
