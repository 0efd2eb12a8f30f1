"""Celery tasks of the marketing app: thin, JSON-only, idempotent; each calls one service.

Services queue these by name (``crm.tasks.tenant_task``), so imports point one way:
tasks -> services."""

from __future__ import annotations

import logging
import uuid

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from crm.models import Tenant
from crm.tasks import TenantTask

from .messaging import Member, MessagingError, get_backend
from .models import CampaignRun, Segment, SegmentMembership
from .segments import segment_refresh, segments_refresh_due
from .sending import (
    ab_tests_decide_due,
    campaigns_start_due,
    run_fail,
    run_prepare,
    run_send,
    runs_kick,
)

logger = logging.getLogger(__name__)


@shared_task(base=TenantTask, name="marketing.refresh_segment", ignore_result=True)
def refresh_segment(tenant: Tenant, *, segment_id: str) -> dict | None:
    segment = Segment.objects.for_tenant(tenant).filter(pk=segment_id).first()
    if segment is None:
        return None
    result = segment_refresh(segment=segment)
    return vars(result) if result else None


@shared_task(name="marketing.refresh_due_segments", ignore_result=True)
def refresh_due_segments() -> int:
    """Beat, every minute: queue the refresh of dynamic segments whose time has come."""
    return segments_refresh_due()


@shared_task(
    base=TenantTask,
    name="marketing.sync_segment",
    ignore_result=True,
    autoretry_for=(MessagingError,),
    retry_backoff=5,
    retry_backoff_max=600,
    max_retries=8,
)
def sync_segment(tenant: Tenant, *, segment_id: str) -> str | None:
    """Push the segment's members to the Messaging service (a no-op on the local backend).
    Idempotent: the whole member list is sent again under a fresh sync id."""
    backend = get_backend()
    if backend.name == "local":
        return None
    segment = Segment.objects.for_tenant(tenant).filter(pk=segment_id).first()
    if segment is None:
        return None
    rows = (
        SegmentMembership.objects.filter(tenant=tenant, segment=segment)
        .order_by("customer_id")
        .values_list(
            "customer_id",
            "customer__email",
            "customer__phone",
            "customer__messaging_contact_id",
            "customer__first_name",
            "customer__last_name",
        )
        .iterator(chunk_size=5_000)
    )
    members = (
        Member(
            customer_id=str(cid),
            email=email,
            phone=phone,
            messaging_contact_id=contact,
            first_name=first,
            last_name=last,
        )
        for cid, email, phone, contact, first, last in rows
    )
    remote_id = backend.upsert_segment(segment=segment, members=members, sync_id=uuid.uuid4().hex)
    Segment.objects.filter(pk=segment.pk).update(
        messaging_segment_id=remote_id or "", messaging_synced_at=timezone.now()
    )
    return remote_id


# ----------------------------------------------------------------------------- campaigns


@shared_task(name="marketing.start_due_campaigns", ignore_result=True)
def start_due_campaigns() -> int:
    """Beat, every minute: start the runs of campaigns whose time has come."""
    return campaigns_start_due()


@shared_task(name="marketing.kick_sending_runs", ignore_result=True)
def kick_sending_runs() -> int:
    """Beat, every minute: senders for runs with work left (after quiet hours, a lost task
    or a killed worker); A/B tests whose wait is over get their winner."""
    ab_tests_decide_due()
    return runs_kick()


@shared_task(
    base=TenantTask,
    name="marketing.prepare_run",
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=2,
    max_retries=8,
)
def prepare_run(tenant: Tenant, *, run_id: int) -> int | None:
    run = CampaignRun.objects.filter(tenant=tenant, pk=run_id).first()
    if run is None:
        return None
    try:
        snapshot = run_prepare(run=run)
    except OperationalError:
        raise  # the database is away: Celery retries
    except Exception as exc:
        logger.exception("campaign run %s could not be prepared", run_id)
        run_fail(run=run, error=f"{type(exc).__name__}: {exc}")
        return None
    return snapshot.targeted if snapshot else None


@shared_task(
    base=TenantTask,
    name="marketing.send_run",
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=2,
    max_retries=8,
)
def send_run(tenant: Tenant, *, run_id: int) -> int:
    run = CampaignRun.objects.filter(tenant=tenant, pk=run_id).first()
    return run_send(run=run) if run else 0
