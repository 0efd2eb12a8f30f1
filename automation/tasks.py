"""Celery tasks of the automation app: thin wrappers around the engine and triggers."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from crm.models import Tenant
from crm.tasks import TenantTask
from marketing.sending import messages_requeue_in_doubt

from .delivery import journey_messages_send
from .engine import journeys_advance
from .stats import step_stats_roll_up
from .triggers import date_triggers_run, segment_triggers_run


@shared_task(name="automation.advance_due_journeys", ignore_result=True)
def advance_due_journeys() -> int:
    """Beat, every minute: journey messages in doubt (their sender died) go back to the
    queue; every tenant's due enrollments advance; senders for the queued messages; the
    step figures' new deltas are rolled up."""
    now = timezone.now()
    messages_requeue_in_doubt(now=now)
    advanced = journeys_advance()
    step_stats_roll_up(now=now)
    return advanced


@shared_task(
    base=TenantTask,
    name="automation.send_journey_messages",
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=2,
    max_retries=8,
)
def send_journey_messages(tenant: Tenant) -> int:
    """A sender, kicked by the sweep once it has committed: the tenant's queued journey
    messages, claimed and sent batch by batch until none may go."""
    return journey_messages_send(tenant=tenant)


@shared_task(base=TenantTask, name="automation.advance_journeys", ignore_result=True)
def advance_journeys(tenant: Tenant) -> int:
    """The kick after people enroll or a subscribed event arrives: one tenant, now."""
    return journeys_advance(tenant=tenant)


@shared_task(name="automation.run_segment_triggers", ignore_result=True)
def run_segment_triggers() -> int:
    """Beat, every minute: people who entered or left the segments journeys start from."""
    return segment_triggers_run()


@shared_task(name="automation.run_date_triggers", ignore_result=True)
def run_date_triggers() -> int:
    """Beat, hourly: birthdays, anniversaries, renewals, rounds N days ago (local dates)."""
    return date_triggers_run()
