"""The demo club's marketing: a few segments (refreshed), and one completed email campaign
with deliveries, opens, clicks, an unsubscribe and a bounce, recorded through the same
service the Messaging webhook uses, so stats, timelines, consent and suppressions agree.

Seeded and keyed by name and event id: a second run adds nothing (segments are refreshed
again, which is what a start of the platform would do anyway).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, transaction

from crm.models import Club, Tenant
from customers.models import CustomerProfile

from .interactions import interaction_record
from .models import (
    Campaign,
    CampaignRun,
    CampaignStatus,
    InteractionKind,
    Message,
    MessageStatus,
    MessageTemplate,
    RunStatus,
    Segment,
    SegmentMembership,
    SkipReason,
    Suppression,
)
from .segments import segment_create, segment_refresh

SEGMENTS: list[dict[str, Any]] = [
    {
        "name": "Active members",
        "description": "Members who did something at the club in the last 30 days.",
        "criteria": {
            "combinator": "AND",
            "rules": [
                {"field": "lifecycle_stage", "operator": "eq", "value": "MEMBER"},
                {"field": "activity_count_30d", "operator": "gte", "value": 1},
            ],
        },
    },
    {
        "name": "Regulars (4+ rounds in 30 days)",
        "description": "The people who keep the tee sheet full.",
        "criteria": {
            "combinator": "AND",
            "rules": [
                {
                    "field": "activity_count",
                    "operator": "gte",
                    "value": 4,
                    "params": {"days": 30, "type": "teetime.round.completed"},
                }
            ],
        },
    },
    {
        "name": "Lapsed members",
        "description": "Did not renew: win-back audience.",
        "criteria": {
            "combinator": "AND",
            "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "LAPSED"}],
        },
    },
    {
        "name": "Single-figure handicaps",
        "description": "Handicap index under 10: competition invitations.",
        "criteria": {
            "combinator": "AND",
            "rules": [{"field": "handicap_index", "operator": "lt", "value": 10}],
        },
    },
    {
        "name": "Paying visitors (90 days)",
        "description": "Visitors who paid a green fee lately: membership prospects.",
        "criteria": {
            "combinator": "AND",
            "rules": [
                {"field": "lifecycle_stage", "operator": "eq", "value": "VISITOR"},
                {
                    "field": "activity_count",
                    "operator": "gte",
                    "value": 1,
                    "params": {"days": 90, "type": "teetime.booking.paid"},
                },
            ],
        },
    },
]
CAMPAIGN_NAME = "Autumn Open: entries now open"
TEMPLATE_NAME = "Autumn Open invitation"
CAMPAIGN_SEGMENT = "Active members"
SENT_DAYS_AGO = 12
SOURCE = "demo"


@dataclass(frozen=True)
class DemoMarketingResult:
    segments: dict[str, int]
    messages: int
    interactions: int


def _segments(tenant: Tenant, club: Club | None, now: datetime) -> dict[str, Segment]:
    existing = {s.name: s for s in Segment.objects.for_tenant(tenant)}
    segments = {}
    for spec in SEGMENTS:
        segment = existing.get(spec["name"]) or segment_create(
            tenant=tenant, data={**spec, "club": club}, actor="demo data"
        )
        segment_refresh(segment=segment, now=now)
        segments[spec["name"]] = segment
    return segments


def _template(tenant: Tenant, club: Club | None) -> MessageTemplate:
    template, _ = MessageTemplate.objects.get_or_create(
        tenant=tenant,
        name=TEMPLATE_NAME,
        defaults={
            "club": club,
            "channel": "email",
            "subject": "{{ first_name }}, the Autumn Open is coming",
            "html_body": (
                "<p>Hi {{ first_name }},</p><p>Entries for the Autumn Open at {{ club }} are "
                'open. <a href="https://example.com/autumn-open">Enter now</a>.</p>'
            ),
        },
    )
    return template


_MESSAGES_SQL = f"""
    INSERT INTO "{Message._meta.db_table}"
        (tenant_id, run_id, campaign_id, customer_id, channel, address, variant, status,
         skip_reason, attempts, error, provider_id, sent_at, created_at, updated_at)
    SELECT %(tenant)s, %(run)s, %(campaign)s, p.id, 'email', COALESCE(p.email, ''), '',
        CASE WHEN p.email IS NULL THEN 'SKIPPED' WHEN NOT p.email_opt_in THEN 'SKIPPED'
             WHEN s.id IS NOT NULL THEN 'SKIPPED' ELSE 'SENT' END,
        CASE WHEN p.email IS NULL THEN %(no_address)s WHEN NOT p.email_opt_in THEN %(no_consent)s
             WHEN s.id IS NOT NULL THEN %(suppressed)s ELSE '' END,
        CASE WHEN p.email IS NOT NULL AND p.email_opt_in AND s.id IS NULL THEN 1 ELSE 0 END,
        '', '', CASE WHEN p.email IS NOT NULL AND p.email_opt_in AND s.id IS NULL
                     THEN %(sent_at)s END, %(sent_at)s, %(sent_at)s
    FROM "{SegmentMembership._meta.db_table}" m
    JOIN "{CustomerProfile._meta.db_table}" p ON p.id = m.customer_id AND p.tenant_id = m.tenant_id
    LEFT JOIN "{Suppression._meta.db_table}" s
        ON s.tenant_id = p.tenant_id AND s.channel = 'email' AND s.address = p.email
    WHERE m.tenant_id = %(tenant)s AND m.segment_id = %(segment)s
    ON CONFLICT (tenant_id, run_id, customer_id, channel) DO NOTHING
"""  # noqa: S608


def _campaign(
    tenant: Tenant, club: Club | None, segment: Segment, now: datetime
) -> tuple[Campaign, int]:
    """The completed campaign and its messages: sent once, the first time (a later run
    finds the run with its messages and leaves them)."""
    local = now.astimezone(ZoneInfo(tenant.timezone)) - timedelta(days=SENT_DAYS_AGO)
    sent_at = local.replace(hour=10, minute=0, second=0, microsecond=0)
    campaign = Campaign.objects.for_tenant(tenant).filter(name=CAMPAIGN_NAME).first()
    if campaign is None:
        campaign = Campaign.objects.create(
            tenant=tenant,
            club=club,
            name=CAMPAIGN_NAME,
            description="Invitation to the club's Autumn Open, to members active lately.",
            segment=segment,
            channels=["email"],
            email_template=_template(tenant, club),
            timezone=tenant.timezone,
            scheduled_at=sent_at,
            status=CampaignStatus.COMPLETED,
            last_run_at=sent_at,
            created_by_label="demo data",
        )
    run, created = CampaignRun.objects.get_or_create(
        tenant=tenant,
        campaign=campaign,
        defaults={
            "scheduled_for": campaign.scheduled_at or sent_at,
            "status": RunStatus.COMPLETED,
            "completed_at": (campaign.scheduled_at or sent_at) + timedelta(minutes=7),
        },
    )
    if created:
        with connection.cursor() as cursor:
            cursor.execute(
                _MESSAGES_SQL,
                {
                    "tenant": tenant.pk,
                    "run": run.pk,
                    "campaign": campaign.pk,
                    "segment": segment.pk,
                    "sent_at": run.scheduled_for,
                    "no_address": SkipReason.NO_ADDRESS,
                    "no_consent": SkipReason.NO_CONSENT,
                    "suppressed": SkipReason.SUPPRESSED,
                },
            )
        targeted = Message.objects.filter(tenant=tenant, run=run).count()
        CampaignRun.objects.filter(pk=run.pk).update(targeted=targeted)
        Campaign.objects.filter(pk=campaign.pk).update(target_count=targeted)
    return campaign, run.pk


def _outcomes(tenant: Tenant, run_id: int, seed: int, now: datetime) -> int:
    """Seeded outcomes of the sent messages: most delivered (the first one bounced), about
    half of those opened, a third of the openers clicked, one opener unsubscribed."""
    sent = list(
        Message.objects.filter(tenant=tenant, run_id=run_id, status=MessageStatus.SENT)
        .select_related("tenant")
        .order_by("customer_id")
    )
    recorded = 0
    unsubscribed = False
    for index, message in enumerate(sent):
        rng = random.Random(f"{tenant.slug}:{seed}:{message.customer_id}")
        at = message.sent_at + timedelta(seconds=rng.randrange(5, 90))
        if index == 0:
            plan = [(InteractionKind.BOUNCED, at, {"bounce": "hard"})]
        else:
            plan = [(InteractionKind.DELIVERED, at, {})]
            if rng.random() < 0.5:
                opened = at + timedelta(minutes=rng.randrange(3, 60 * 48))
                plan.append((InteractionKind.OPENED, opened, {}))
                if rng.random() < 0.33:
                    link = "https://example.com/autumn-open"
                    clicked = opened + timedelta(seconds=rng.randrange(5, 300))
                    plan.append((InteractionKind.CLICKED, clicked, {"url": link}))
                elif not unsubscribed:
                    unsubscribed = True
                    gone = opened + timedelta(minutes=2)
                    plan.append((InteractionKind.UNSUBSCRIBED, gone, {}))
        for kind, occurred_at, metadata in plan:
            result = interaction_record(
                message=message,
                kind=kind,
                source=SOURCE,
                event_id=f"demo-{message.pk}-{kind.lower()}",
                occurred_at=occurred_at,
                metadata=metadata,
                now=now,
            )
            recorded += result.interaction is not None
    return recorded


def demo_marketing_generate(*, tenant: Tenant, now: datetime, seed: int = 0) -> DemoMarketingResult:
    """Segments (created once, refreshed at ``now``) and the completed campaign with its
    results."""
    club = Club.objects.for_tenant(tenant).order_by("name").first()
    with transaction.atomic():
        segments = _segments(tenant, club, now)
        _campaign_row, run_id = _campaign(tenant, club, segments[CAMPAIGN_SEGMENT], now)
    interactions = _outcomes(tenant, run_id, seed, now)
    return DemoMarketingResult(
        segments={
            name: SegmentMembership.objects.filter(tenant=tenant, segment=segment).count()
            for name, segment in segments.items()
        },
        messages=Message.objects.filter(tenant=tenant, run_id=run_id).count(),
        interactions=interactions,
    )
