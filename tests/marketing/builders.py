"""Builders shared by the marketing tests (and the erasure and browser tests that send a
campaign): members who match the ``MEMBERS`` segment, a campaign to them, running a
campaign's send to the end in this process, and signed posts to the Messaging webhook.

A campaign goes through the segment service and a send through the real sending pipeline,
so these are functions rather than model factories; the template is
``tests.factories.MessageTemplateFactory``.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from customers.models import CustomerProfile
from marketing.campaigns import campaign_schedule
from marketing.common import message_identity
from marketing.interactions import webhook_signature
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
WEBHOOK_URL = "/api/v1/webhooks/messaging"


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


def prepare_run(campaign, now=NOON_JHB) -> CampaignRun:
    """Schedules a draft, starts it and prepares its run (the snapshot) in this process."""
    campaign_schedule(campaign=campaign) if campaign.status == CampaignStatus.DRAFT else None
    campaigns_start_due(now=now + timedelta(minutes=1))
    run = CampaignRun.objects.get(campaign=campaign)
    run_prepare(run=run, now=now)
    run.refresh_from_db()
    return run


def run_to_completion(campaign, now=NOON_JHB) -> CampaignRun:
    """Schedules a draft, starts it, prepares and sends its run in this process."""
    run = prepare_run(campaign, now)
    run_send(run=run, now_fn=lambda: now)
    run.refresh_from_db()
    return run


def post_webhook(client, events, *, timestamp=None, secret=None, tamper=False):
    """POSTs ``events`` to the Messaging webhook, signed (with ``secret``, default the real
    one, at ``timestamp``, default now); ``tamper`` changes the body after signing."""
    body = json.dumps({"events": events}).encode()
    stamp = str(int(timestamp if timestamp is not None else time.time()))
    signature = webhook_signature(secret or settings.MESSAGING_WEBHOOK_SECRET, stamp, body)
    if tamper:
        body = body.replace(b"opened", b"clicked")
    return client.generic(
        "POST",
        WEBHOOK_URL,
        body,
        content_type="application/json",
        HTTP_X_CRM_TIMESTAMP=stamp,
        HTTP_X_CRM_SIGNATURE=signature,
    )


def webhook_event(message, kind, event_id, **extra) -> dict:
    """One webhook event of ``kind`` about ``message``, dated now."""
    return {
        "id": event_id,
        "type": kind,
        "messageId": message_identity(message),
        "timestamp": timezone.now().isoformat(),
        **extra,
    }
