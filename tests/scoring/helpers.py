"""Helpers of the scoring tests: profiles with given metrics, sent messages with
interactions (rows written directly: the scores read tables, not the pipelines)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from customers.models import Activity, CustomerProfile
from marketing.models import Campaign, CampaignRun, Interaction, Message, MessageStatus

_seq = itertools.count()


def profile(tenant, **fields) -> CustomerProfile:
    n = next(_seq)
    fields.setdefault("email", f"p{n}@example.com")
    return CustomerProfile.objects.create(tenant=tenant, **fields)


def run_of(tenant, now: datetime) -> CampaignRun:
    campaign = Campaign.objects.create(tenant=tenant, name=f"Campaign {next(_seq)}")
    return CampaignRun.objects.create(tenant=tenant, campaign=campaign, scheduled_for=now)


def sent(
    tenant,
    customer,
    *,
    at: datetime,
    run: CampaignRun,
    opens: int = 0,
    clicks: int = 0,
    status: str = MessageStatus.SENT,
    channel: str = "email",
    interactions_at: datetime | None = None,
) -> Message:
    message = Message.objects.create(
        tenant=tenant,
        run=run,
        campaign=run.campaign,
        customer=customer,
        channel=channel,
        status=status,
        sent_at=at if status == MessageStatus.SENT else None,
    )
    when = interactions_at or at + timedelta(hours=1)
    for kind, count in (("OPENED", opens), ("CLICKED", clicks)):
        for _ in range(count):
            Interaction.objects.create(
                tenant=tenant,
                message=message,
                campaign=run.campaign,
                customer=customer,
                kind=kind,
                source="test",
                event_id=f"evt-{next(_seq)}",
                occurred_at=when,
            )
    return message


def activity(tenant, customer, type_: str, at: datetime, **metadata) -> Activity:
    n = next(_seq)
    return Activity.objects.create(
        tenant=tenant,
        customer=customer,
        type=type_,
        category="golf",
        title=type_,
        metadata=metadata,
        source_service="test",
        source_event_id=f"a-{n}",
        occurred_at=at,
    )


def engaged(tenant, customer, count: int, at: datetime) -> None:
    """``count`` bookings at ``at``: engagement the 30-day recount counts, no churn reason."""
    for _ in range(count):
        activity(tenant, customer, "teetime.booking.created", at)
