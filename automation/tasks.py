"""Celery tasks of the automation app: thin wrappers around the engine and triggers."""

from __future__ import annotations

from celery import shared_task

from crm.models import Tenant
from crm.tasks import TenantTask

from .engine import journeys_advance


@shared_task(name="automation.advance_due_journeys", ignore_result=True)
def advance_due_journeys() -> int:
    """Beat, every minute: every tenant's due enrollments (and queued journey messages)."""
    return journeys_advance()


@shared_task(base=TenantTask, name="automation.advance_journeys", ignore_result=True)
def advance_journeys(tenant: Tenant) -> int:
    """The kick after people enroll or a subscribed event arrives: one tenant, now."""
    return journeys_advance(tenant=tenant)
