"""Retention of the event pipeline's inbox (registered in ``CustomersConfig.ready``; the
job and its guarantees: ``crm.retention``).

After ``RETENTION_SYNC_LOG_DAYS`` (90) a sync-log row keeps what proves the event was
received and applied (tenant, source, event id, type, times, status, attempts, error, the
profile it was about) and loses what it said about the person: ``payload`` and ``identity``
become ``{}``. Nothing reads them once the event is applied: deduplication uses
(tenant, source, event id), the daily statistics count rows by source. PENDING rows are
left alone (still to be applied); a row older than the period is never PENDING in practice
(bounded attempts end FAILED long before).
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import connection

from crm.retention import days_before, sweep_ids

from .models import SyncLogEntry, SyncStatus

SYNC_LOG = SyncLogEntry._meta.db_table
_SCRUB_SQL = f"""
    UPDATE "{SYNC_LOG}" SET payload = '{{}}'::jsonb, identity = '{{}}'::jsonb, updated_at = %s
    WHERE id > %s AND id <= %s AND status <> '{SyncStatus.PENDING}'
      AND (payload <> '{{}}'::jsonb OR identity <> '{{}}'::jsonb)
"""  # noqa: S608


def sync_log_retention(*, now: datetime, deadline: float) -> tuple[int, bool]:
    def scrub(*, lo: int, hi: int) -> int:
        with connection.cursor() as cursor:
            cursor.execute(_SCRUB_SQL, [now, lo, hi])
            return cursor.rowcount

    return sweep_ids(
        name="sync_log_payloads",
        model=SyncLogEntry,
        cutoff=days_before(now, settings.RETENTION_SYNC_LOG_DAYS),
        deadline=deadline,
        apply=scrub,
    )
