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

from django.conf import settings

from crm.retention import days_before, sql_step

from .models import SyncLogEntry, SyncStatus

SYNC_LOG = SyncLogEntry._meta.db_table
_SCRUB_SQL = f"""
    UPDATE "{SYNC_LOG}"
    SET payload = '{{}}'::jsonb, identity = '{{}}'::jsonb, updated_at = %(now)s
    WHERE id > %(lo)s AND id <= %(hi)s AND status <> '{SyncStatus.PENDING}'
      AND (payload <> '{{}}'::jsonb OR identity <> '{{}}'::jsonb)
"""  # noqa: S608

sync_log_retention = sql_step(
    name="sync_log_payloads",
    model=SyncLogEntry,
    cutoff=lambda now: days_before(now, settings.RETENTION_SYNC_LOG_DAYS),
    statements=[_SCRUB_SQL],
)
