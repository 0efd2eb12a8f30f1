"""Builders shared by the marketing tests (and the erasure and browser tests that send a
campaign): members who match the ``MEMBERS`` segment, a campaign to them, and running a
campaign's send to the end in this process.

A campaign goes through the segment service and a send through the real sending pipeline,
so these are functions rather than model factories; the template is
``tests.factories.MessageTemplateFactory``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.utils import timezone

from customers.models import CustomerProfile
from marketing.campaigns import campaign_schedule
from marketing.models import Campaign, CampaignRun, CampaignStatus
from marketing.segments import segment_create
from marketing.sending import campaigns_start_due, run_prepare, run_send
from tests.customers.helpers import person
from tests.factories import MessageTemplateFactory

MEMBERS = {
    "combinator": "AND",
    "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "MEMBER"}],
}
NOON_JHB = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # 12:00 in Johannesburg


def make_member(tenant, email, **fields) -> CustomerProfile:
    """A MEMBER (so in the ``MEMBERS`` segment) with a first name taken from the email."""
    profile = person(tenant, email=email)
    CustomerProfile.objects.filter(pk=profile.pk).update(
        lifecycle_stage="MEMBER", first_name=email.split("@")[0].title(), **fields
    )
    return profile


def make_campaign(tenant, **extra) -> Campaign:
    """A draft email campaign to a new ``MEMBERS`` segment, due at ``NOON_JHB``."""
    segment = segment_create(
        tenant=tenant, data={"name": f"seg-{timezone.now().timestamp()}", "criteria": MEMBERS}
    )
    return Campaign.objects.create(
        tenant=tenant,
        name=extra.pop("name", "November news"),
        segment=segment,
        channels=extra.pop("channels", ["email"]),
        email_template=extra.pop("email_template", None) or MessageTemplateFactory(tenant=tenant),
        scheduled_at=extra.pop("scheduled_at", NOON_JHB),
        **extra,
    )


def run_to_completion(campaign, now=NOON_JHB) -> CampaignRun:
    """Schedules a draft, starts it, prepares and sends its run in this process."""
    campaign_schedule(campaign=campaign) if campaign.status == CampaignStatus.DRAFT else None
    campaigns_start_due(now=now + timedelta(minutes=1))
    run = CampaignRun.objects.get(campaign=campaign)
    run_prepare(run=run, now=now)
    run.refresh_from_db()
    run_send(run=run, now_fn=lambda: now)
    run.refresh_from_db()
    return run
