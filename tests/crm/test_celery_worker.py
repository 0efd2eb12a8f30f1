"""Tasks run on a real worker over Redis, enqueued only when the transaction commits."""

from __future__ import annotations

import time
import uuid

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from crm.tasks import tenant_ping
from tests.factories import TenantFactory
from tests.worker import celery_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _wait_for(key: str, timeout: float = 30) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cache.get(key)
        if value is not None:
            return value
        time.sleep(0.1)
    return None


def test_tenant_task_is_queued_on_commit_and_run_by_a_real_worker():
    tenant = TenantFactory()
    marker = uuid.uuid4().hex
    broker = redis.Redis.from_url(settings.REDIS_URL.replace("redis+socket://", "unix://", 1))

    with celery_worker() as worker:
        with transaction.atomic():
            tenant_ping.enqueue(tenant, marker=marker)
            # Nothing reaches the broker before the commit.
            assert broker.llen(worker.queue) == 0
        ran_at = _wait_for(f"crm:ping:{tenant.pk}:{marker}")

    assert ran_at is not None, worker.log()


def test_a_rolled_back_transaction_enqueues_nothing():
    tenant = TenantFactory()
    marker = uuid.uuid4().hex

    with celery_worker() as worker:
        with pytest.raises(RuntimeError), transaction.atomic():
            tenant_ping.enqueue(tenant, marker=marker)
            raise RuntimeError("rolled back")
        # A control task queued after proves the worker was running and had its chance.
        control = uuid.uuid4().hex
        tenant_ping.enqueue(tenant, marker=control)
        assert _wait_for(f"crm:ping:{tenant.pk}:{control}") is not None, worker.log()

    assert cache.get(f"crm:ping:{tenant.pk}:{marker}") is None
