"""The campaign channel ``social`` (the guide's SOCIAL): a campaign that lists it posts its
``social_text`` (and ``social_link``) on the ACTIVE accounts of the campaign's club that
can take the post, when the campaign runs, instead of sending messages. Registered with
``crm.registry.register_campaign_channel`` in ``apps.py`` so ``marketing`` never imports
``social`` (the dependency goes social → marketing)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Count

from crm.models import Tenant
from crm.registry import CampaignChannel
from marketing.models import Campaign, CampaignRun

from .models import Connection, ConnectionStatus, Post, Publication, PublicationStatus
from .posts import post_create, post_schedule, post_validate_for

NAME = "social"


def _targets(*, tenant: Tenant, club_id: Any, draft: Post) -> list[Connection]:
    return [
        c
        for c in Connection.objects.for_tenant(tenant).filter(
            club_id=club_id, status=ConnectionStatus.ACTIVE
        )
        if not post_validate_for(draft, c.platform)
    ]


def social_channel_validate(
    *, tenant: Tenant, values: dict[str, Any], for_schedule: bool
) -> dict[str, list[str]]:
    """Scheduling needs the club whose accounts post, the text, and at least one of its
    active accounts that can take this post."""
    text = (values.get("social_text") or "").strip()
    link = values.get("social_link") or ""
    if not for_schedule:
        return {}
    errors: dict[str, list[str]] = {}
    club = values.get("club")
    if not text:
        errors["social_text"] = ["The social channel needs the post's text."]
    if club is None:
        errors["club"] = ["The social channel posts on a club's accounts: choose the club."]
    elif text and not _targets(
        tenant=tenant, club_id=club.pk, draft=Post(content=text, link=link, media_urls=[])
    ):
        errors["channels"] = [f"{club.name} has no active social account that can take this post."]
    return errors


def social_channel_run(*, campaign: Campaign, run: CampaignRun, now: datetime) -> None:
    """One post per run on the club's active accounts that can take it, due now (the
    publish sweep sends it). Runs inside the run's snapshot transaction; the unique
    (tenant, campaign_run) makes a repeat impossible."""
    if Post.objects.filter(tenant=campaign.tenant, campaign_run=run).exists():
        return
    data = {"content": campaign.social_text, "link": campaign.social_link}
    draft = Post(content=campaign.social_text, link=campaign.social_link, media_urls=[])
    targets = _targets(tenant=campaign.tenant, club_id=campaign.club_id, draft=draft)
    if not targets or campaign.club is None:
        return  # the accounts went away since scheduling: the stats show no post
    post = post_create(
        tenant=campaign.tenant,
        club=campaign.club,
        data=data,
        connection_ids=[c.pk for c in targets],
        actor="campaign",
    )
    Post.objects.filter(pk=post.pk).update(campaign=campaign, campaign_run=run)
    post_schedule(post=post, scheduled_at=now, now=now)


def social_channel_stats(*, campaign: Campaign) -> dict[str, int]:
    counts = dict(
        Publication.objects.filter(tenant=campaign.tenant, post__campaign=campaign)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    waiting = (PublicationStatus.SCHEDULED, PublicationStatus.PUBLISHING, PublicationStatus.DRAFT)
    return {
        "published": counts.get(PublicationStatus.PUBLISHED, 0),
        "failed": counts.get(PublicationStatus.FAILED, 0),
        "pending": sum(counts.get(s, 0) for s in waiting),
        "held": counts.get(PublicationStatus.NEEDS_REVIEW, 0),
        "cancelled": counts.get(PublicationStatus.CANCELLED, 0),
    }


SOCIAL_CHANNEL = CampaignChannel(
    validate=social_channel_validate, run=social_channel_run, stats=social_channel_stats
)

__all__ = [
    "SOCIAL_CHANNEL",
    "social_channel_run",
    "social_channel_stats",
    "social_channel_validate",
]
