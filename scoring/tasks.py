"""Celery tasks of the scoring app: thin wrappers around ``scoring.nightly``; all routed to
the ``scoring`` queue (``crm.celery.TASK_QUEUES``)."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task

from crm.models import Tenant
from crm.tasks import TenantTask

from .models import RunKind
from .nightly import runs_queue_due, tenant_score


@shared_task(name="scoring.run_due", ignore_result=True)
def run_due() -> int:
    """Beat, every 15 minutes: queues the nightly run of each tenant past 02:00 local."""
    return runs_queue_due()


@shared_task(base=TenantTask, name="scoring.score_tenant", ignore_result=True)
def score_tenant(tenant: Tenant, *, kind: str = RunKind.MANUAL, now: str | None = None) -> int:
    """One tenant's run. Idempotent: a nightly run of a local date already done is a no-op."""
    run = tenant_score(tenant=tenant, kind=kind, now=datetime.fromisoformat(now) if now else None)
    return run.scored if run else 0
