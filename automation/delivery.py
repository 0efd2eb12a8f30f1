"""Delivering queued journey messages: the campaigns' two-phase send, for journey steps.

A SEND step only writes its message rows (QUEUED, or SKIPPED with the reason) in the
transaction that moves the enrollment, so the move and the row are one, exactly once. The
delivery happens afterwards, in the sender task (``automation.send_journey_messages``, queue
``sends``), kicked once the sweep has committed and by the every-minute beat:

1. ``marketing.sending.messages_claim`` claims QUEUED journey messages (``SKIP LOCKED``),
   marks them SENDING with an attempt and commits, before the backend is called;
2. ``marketing.delivery.deliver`` checks consent and suppression again, renders, sends with
   the row's stable id as Message-ID / idempotency key, and marks SMTP emails SENT one by
   one (idempotent backends per batch), so a worker killed mid-batch leaves at most one
   row in doubt per process;
3. rows left SENDING for ``IN_DOUBT_AFTER`` go back to QUEUED with the same Message-ID
   (``messages_requeue_in_doubt``, in both beats), FAILED when their attempts are spent.

Quiet hours hold them: claimed during the tenant's quiet hours, they go back to QUEUED with
``send_after`` at the window's end."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from crm.models import Tenant
from crm.tasks import tenant_task
from marketing.delivery import SendPlan, deliver
from marketing.messaging import get_backend
from marketing.models import Message, MessageStatus
from marketing.sending import in_quiet_hours, messages_claim, quiet_hours_end

from .models import EnrollmentStep

SEND_CLAIM = 50  # as a campaign's claim: a batch is sent in well under IN_DOUBT_AFTER
SENDERS = 2


def _journey_messages(tenant: Tenant | None):
    rows = Message.objects.filter(journey_step_id__isnull=False)
    return rows.filter(tenant=tenant) if tenant is not None else rows


def journey_messages_send(*, tenant: Tenant | None = None, now: datetime | None = None) -> int:
    """Deliver queued journey messages (of one tenant, or all), claim by claim, until none
    may go. ``now`` fixes the clock (tests); otherwise each claim takes the time it begins,
    so the in-doubt clock of a late claim does not start when the call began. Returns how
    many were sent."""
    backend = get_backend()
    sent = 0
    while True:
        at = now or timezone.now()
        rows = messages_claim(messages=_journey_messages(tenant), now=at, limit=SEND_CLAIM)
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
        for tenant_id, claimed in by_tenant.items():
            owner = tenants[tenant_id]
            if in_quiet_hours(owner, at):
                # Back to the queue until the window opens (claimed again after it).
                Message.objects.filter(
                    pk__in=[m.pk for m in claimed], status=MessageStatus.SENDING
                ).update(status=MessageStatus.QUEUED, send_after=quiet_hours_end(owner, at))
                continue
            # The claimed rows as they are, with their templates; the attempt this claim
            # counted goes with them (``deliver`` sends a row only while it is still ours).
            attempts = {m.pk: m.attempts for m in claimed}
            loaded = list(Message.objects.filter(pk__in=list(attempts)).select_related("template"))
            by_club: dict[str, list[Message]] = defaultdict(list)
            for m in loaded:
                m.attempts = attempts[m.pk]
                by_club[clubs.get(m.journey_step_id) or ""].append(m)
            for club_name, group in by_club.items():
                plan = SendPlan(
                    variants={},
                    club_name=club_name,
                    from_email=owner.email_from or settings.DEFAULT_FROM_EMAIL,
                )
                sent += deliver(
                    messages=group, campaign=None, tenant=owner, backend=backend, plan=plan, now=at
                )


def journey_senders_kick(*, tenant: Tenant | None = None, now: datetime | None = None) -> int:
    """Queue sender tasks for the tenants (or the one tenant) with journey messages that may
    go now (after commit: call it once the rows are committed). Returns how many tenants."""
    now = now or timezone.now()
    due = (
        _journey_messages(tenant)
        .filter(status=MessageStatus.QUEUED)
        .filter(Q(send_after__isnull=True) | Q(send_after__lte=now))
    )
    tenant_ids = set(due.values_list("tenant_id", flat=True).distinct())
    task = tenant_task("automation.send_journey_messages")
    for owner in Tenant.objects.filter(pk__in=tenant_ids):
        for _ in range(SENDERS):
            task.enqueue(owner)
    return len(tenant_ids)
