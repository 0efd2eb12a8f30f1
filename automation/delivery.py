"""Delivering queued journey messages through the campaign pipeline
(``marketing.delivery.deliver``): claimed with ``FOR UPDATE SKIP LOCKED`` and marked SENDING
(with an attempt) before sending, so a message is never sent by two workers; consent and
suppression are checked again at delivery; outside the tenant's quiet hours only. A worker
killed mid-send leaves rows SENDING: the campaign sweep (``marketing.sending.runs_kick``)
queues them again after ``IN_DOUBT_AFTER`` and they go with the same Message-ID."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from crm.models import Tenant
from marketing.delivery import SendPlan, deliver
from marketing.messaging import get_backend
from marketing.models import Message, MessageStatus
from marketing.sending import in_quiet_hours, quiet_hours_end

from .models import EnrollmentStep

SEND_CLAIM = 200


def _claim_messages(tenant: Tenant | None, now: datetime) -> list[Message]:
    with transaction.atomic():
        qs = Message.objects.select_for_update(skip_locked=True).filter(
            journey_step_id__isnull=False, status=MessageStatus.QUEUED
        )
        if tenant is not None:
            qs = qs.filter(tenant=tenant)
        rows = list(
            qs.filter(Q(send_after__isnull=True) | Q(send_after__lte=now)).order_by("id")[
                :SEND_CLAIM
            ]
        )
        if rows:
            Message.objects.filter(pk__in=[m.pk for m in rows]).update(
                status=MessageStatus.SENDING, send_after=now, attempts=F("attempts") + 1
            )
            for message in rows:
                message.status, message.send_after = MessageStatus.SENDING, now
                message.attempts += 1
    return rows


def journey_messages_send(*, tenant: Tenant | None = None, now: datetime | None = None) -> int:
    """Deliver queued journey messages (outside quiet hours), batch by batch."""
    now = now or timezone.now()
    backend = get_backend()
    sent = 0
    while True:
        rows = _claim_messages(tenant, now)
        if not rows:
            return sent
        by_tenant: dict[Any, list[Message]] = defaultdict(list)
        for m in rows:
            by_tenant[m.tenant_id].append(m)
        tenants = {t.pk: t for t in Tenant.objects.filter(pk__in=by_tenant)}
        clubs = dict(
            EnrollmentStep.objects.filter(pk__in=[m.journey_step_id for m in rows]).values_list(
                "pk", "enrollment__journey__club__name"
            )
        )
        for tenant_id, messages in by_tenant.items():
            owner = tenants[tenant_id]
            if in_quiet_hours(owner, now):
                # Back to the queue until the window opens (claimed again after it).
                Message.objects.filter(pk__in=[m.pk for m in messages]).update(
                    status=MessageStatus.QUEUED, send_after=quiet_hours_end(owner, now)
                )
                continue
            loaded = list(
                Message.objects.filter(pk__in=[m.pk for m in messages]).select_related("template")
            )
            by_club: dict[str, list[Message]] = defaultdict(list)
            for m in loaded:
                by_club[clubs.get(m.journey_step_id) or ""].append(m)
            for club_name, group in by_club.items():
                plan = SendPlan(
                    variants={},
                    club_name=club_name,
                    from_email=owner.email_from or settings.DEFAULT_FROM_EMAIL,
                )
                sent += deliver(
                    messages=group, campaign=None, tenant=owner, backend=backend, plan=plan, now=now
                )
