"""The task base every app uses, and the kernel's periodic tasks.

Tasks take ids and plain JSON data, are enqueued only once the surrounding transaction has
committed (``enqueue``), and are idempotent: the broker may deliver a task again after a
worker dies (late ack), so side effects are guarded by unique keys and status fields.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from celery import current_app, shared_task
from celery.contrib.django.task import DjangoTask
from django.core.cache import cache
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from .models import Tenant
from .observability import log_tenant_set
from .retention import retention_run

logger = logging.getLogger(__name__)

BEAT_HEARTBEAT_KEY = "crm:beat:last-seen"


class TenantTask(DjangoTask):
    """A task run on behalf of one tenant: its first argument is the tenant's id.

    ``enqueue(tenant, ...)`` queues it after commit; the task body receives the loaded
    ``Tenant``. A task for a deleted or deactivated tenant is dropped with a warning.
    """

    abstract = True
    typing = True

    def enqueue(self, tenant: Tenant, /, **kwargs: Any) -> None:
        self.delay_on_commit(str(tenant.pk), **kwargs)

    def __call__(self, tenant_id: str, /, *args: Any, **kwargs: Any) -> Any:
        tenant = Tenant.objects.filter(pk=tenant_id, is_active=True).first()
        if tenant is None:
            logger.warning("task %s dropped: tenant %s is gone or inactive", self.name, tenant_id)
            return None
        log_tenant_set(tenant)
        return super().__call__(tenant, *args, **kwargs)


def tenant_task(name: str) -> TenantTask:
    """The registered task called ``name``. A service queues its own app's tasks by name, so
    the services module never imports the tasks module that imports it: imports point one
    way, tasks -> services. Each app imports its tasks in ``AppConfig.ready`` so the registry
    holds them in every process (web, worker, shell)."""
    return current_app.tasks[name]


@shared_task(name="crm.beat_heartbeat", ignore_result=True)
def beat_heartbeat() -> str:
    """Proves beat and a worker are alive; ``/readyz`` reports the last time seen."""
    now = timezone.now().isoformat()
    cache.set(BEAT_HEARTBEAT_KEY, now, timeout=None)
    return now


def beat_metrics(*, now: datetime) -> Iterator[Metric]:
    """``/metrics``: seconds since the heartbeat last ran (beat queued it and a worker ran it;
    -1 when never seen, e.g. after Redis was emptied)."""
    seen = cache.get(BEAT_HEARTBEAT_KEY)
    age = (now - datetime.fromisoformat(seen)).total_seconds() if seen else -1.0
    yield GaugeMetricFamily(
        "crm_beat_heartbeat_age_seconds",
        "Seconds since the beat heartbeat task last ran.",
        value=age,
    )


@shared_task(name="crm.purge_old_login_attempts", ignore_result=True)
def purge_old_login_attempts(days: int = 30) -> int:
    """Keeps django-axes' attempt log bounded."""
    from axes.models import AccessAttempt, AccessLog

    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = AccessAttempt.objects.filter(attempt_time__lt=cutoff).delete()
    logs, _ = AccessLog.objects.filter(attempt_time__lt=cutoff).delete()
    logger.info("purged %s login attempts and %s access logs", deleted, logs)
    return deleted + logs


@shared_task(name="crm.retention_run", bind=True, ignore_result=True)
def retention_nightly(self) -> dict[str, tuple[int, bool]]:
    """The nightly retention job (``crm.retention``). When a step ran out of time (a first
    run over years of rows) and made progress, the job queues itself again to go on."""
    results = retention_run()
    unfinished = [name for name, (handled, done) in results.items() if not done and handled]
    if unfinished:
        logger.info("retention continues in a new run: %s", ", ".join(unfinished))
        self.apply_async()
    return results


@shared_task(base=TenantTask, name="crm.tenant_ping", ignore_result=True)
def tenant_ping(tenant: Tenant, *, marker: str) -> None:
    """Diagnostic: records in Redis that a worker ran a task for ``tenant``.

    Used by the worker tests and by operators checking a deployment end to end."""
    cache.set(f"crm:ping:{tenant.pk}:{marker}", timezone.now().isoformat(), timeout=600)
