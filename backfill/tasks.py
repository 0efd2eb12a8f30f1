"""Celery tasks of the backfill app (queue ``backfill``): thin wrappers over ``runs``."""

from __future__ import annotations

import logging

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

from crm.models import Tenant
from crm.tasks import TenantTask

from .mca import Export
from .models import ImportRun, RunStatus
from .runs import PROGRESS_TTL, progress_key, run_continue

logger = logging.getLogger(__name__)
PROGRESS_SAVE_SECONDS = 2.0

# A large export takes longer than the default 15-minute hard limit; the Redis visibility
# timeout (1 h) stays above this limit, so a running import is never delivered twice.
IMPORT_TIME_LIMIT = 50 * 60


@shared_task(
    base=TenantTask,
    name="backfill.import_run",
    ignore_result=True,
    time_limit=IMPORT_TIME_LIMIT,
    soft_time_limit=IMPORT_TIME_LIMIT - 60,
)
def import_run(tenant: Tenant, run_id: str, path: str) -> str:
    """Take a run started in the admin to the end. Idempotent: a completed run is left as it
    is, an unfinished one resumes (the broker re-delivers it if the worker dies)."""
    run = ImportRun.objects.for_tenant(tenant).filter(pk=run_id).first()
    if run is None or run.status == RunStatus.COMPLETED:
        return "nothing to do"
    last = {"at": 0.0, "phase": ""}

    def progress(phase: str, done: int, total: int | None) -> None:
        # Live progress on the run's page: every new phase, and within a phase every few
        # seconds (not per chunk of rows).
        stamp = timezone.now().timestamp()
        if (
            phase != last["phase"]
            or stamp - float(last["at"]) >= PROGRESS_SAVE_SECONDS
            or total is not None
        ):
            last.update(at=stamp, phase=phase)
            payload = {"phase": phase, "done": done, "total": total}
            cache.set(progress_key(run.pk), payload, timeout=PROGRESS_TTL)

    export = Export(path)
    try:
        run = run_continue(run=run, export=export, progress=progress)
    finally:
        export.close()
    return run.status
