"""The nightly run: at 02:00 in each tenant's timezone, once per tenant and local day.

Beat runs ``scoring.run_due`` every 15 minutes; it queues ``scoring.score_tenant`` for every
active tenant whose local time is past ``RUN_AT`` and whose nightly run of that local date
is not recorded yet (``tenants_due``). The task (``tenant_score``) does, in one transaction:

1. claims the run: INSERT of (tenant, local date, nightly) ... ON CONFLICT DO NOTHING. A
   second beat tick, or a redelivered task, finds the row and does nothing; a second worker
   racing the first waits on the unique index until the first commits, then does nothing;
2. recounts the rolling 30-day activity counts and writes engagement (whose frequency
   reads the fresh counts) and churn risk, in one statement (``scores_write``: only what
   changed), then the day's aggregates (``daily_stats_record``).

A failure rolls everything back, claim included, so the next tick (or the redelivery)
runs it again. On UK DST days "02:00" is the first instant the local clock reads 02:00 or
later: 01:00 UTC when the clocks go forward (01:00 GMT becomes 02:00 BST), 02:00 UTC when
they go back (01:00-01:59 happen twice, 02:00 GMT once).

On demand (admin action, ``manage.py score_tenants``): a MANUAL run, never unique, same steps.
"""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.utils import timezone

from crm.models import Tenant
from crm.tasks import tenant_task

from .analytics import daily_stats_record
from .models import RunKind, ScoringRun
from .scores import scores_write, work_mem_raise

RUN_AT = time(2, 0)
RUN = ScoringRun._meta.db_table

_CLAIM_SQL = f"""
    INSERT INTO "{RUN}" (tenant_id, kind, local_date, started_at, scored, error,
                         created_at, updated_at)
    VALUES (%s, %s, %s, %s, 0, '', %s, %s)
    ON CONFLICT (tenant_id, local_date) WHERE kind = '{RunKind.NIGHTLY}' DO NOTHING
    RETURNING id
"""  # noqa: S608


def local_now(tenant: Tenant, now: datetime) -> datetime:
    return now.astimezone(ZoneInfo(tenant.timezone))


def tenants_due(*, now: datetime | None = None) -> list[Tenant]:
    """Active tenants past 02:00 local whose nightly run of their local date is missing."""
    now = now or timezone.now()
    tenants = list(Tenant.objects.filter(is_active=True).order_by("slug"))
    dates = {t.pk: local_now(t, now).date() for t in tenants}
    done = set(
        ScoringRun.objects.filter(
            kind=RunKind.NIGHTLY, tenant__in=tenants, local_date__in=set(dates.values())
        ).values_list("tenant_id", "local_date")
    )
    return [
        t for t in tenants if local_now(t, now).time() >= RUN_AT and (t.pk, dates[t.pk]) not in done
    ]


def runs_queue_due(*, now: datetime | None = None) -> int:
    """Beat: queues the nightly task of every tenant due (the task claims the day)."""
    now = now or timezone.now()
    due = tenants_due(now=now)
    task = tenant_task("scoring.score_tenant")
    for tenant in due:
        task.enqueue(tenant, kind=RunKind.NIGHTLY, now=now.isoformat())
    return len(due)


def tenant_score(
    *, tenant: Tenant, kind: str = RunKind.MANUAL, now: datetime | None = None
) -> ScoringRun | None:
    """Scores the tenant (steps in the module docstring). A nightly run already claimed for
    the tenant's local date returns None and does nothing."""
    now = now or timezone.now()
    local_date = local_now(tenant, now).date()
    with transaction.atomic():
        work_mem_raise()
        if kind == RunKind.NIGHTLY:
            with connection.cursor() as cursor:
                cursor.execute(_CLAIM_SQL, [tenant.pk, kind, local_date, now, now, now])
                row = cursor.fetchone()
            if row is None:
                return None
            run = ScoringRun.objects.get(pk=row[0])
        else:
            run = ScoringRun.objects.create(
                tenant=tenant, kind=kind, local_date=local_date, started_at=now
            )
        run.scored = scores_write(tenant=tenant, now=now).scored
        daily_stats_record(tenant=tenant, now=now)
        run.finished_at = timezone.now()
        run.save(update_fields=["scored", "finished_at", "updated_at"])
    return run
