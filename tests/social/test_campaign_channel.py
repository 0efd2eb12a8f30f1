"""SOCIAL as a campaign channel: a campaign that lists "social" posts on its club's active
accounts when it runs (once per run), is validated before scheduling, and shows its
publications in its stats. Marketing reaches it only through crm.registry."""

from __future__ import annotations

import pytest
import time_machine
from django.core.exceptions import ValidationError

from marketing.campaigns import campaign_schedule, campaign_stats
from marketing.models import Campaign, CampaignRun, CampaignStatus, Message
from marketing.sending import run_prepare
from social.connections import connection_mark_needs_attention
from social.models import Platform, Post, Publication, PublicationStatus
from tests.factories import ClubFactory
from tests.marketing.builders import NOON_JHB, make_campaign, make_member, run_to_completion

from .helpers import make_connection


@pytest.fixture(autouse=True)
def _frozen():
    with time_machine.travel(NOON_JHB, tick=False):
        yield


@pytest.fixture
def accounts(tenant_a, club_a):
    other_club = ClubFactory(tenant=tenant_a, name="Elsewhere")
    sick = make_connection(tenant_a, club_a, platform=Platform.FACEBOOK_PAGE, account_id="p1")
    connection_mark_needs_attention(connection=sick, error="expired")
    return {
        "x": make_connection(tenant_a, club_a, platform=Platform.X, account_id="x1"),
        "ig": make_connection(
            tenant_a, club_a, platform=Platform.INSTAGRAM, account_id="ig1", refresh_token=None
        ),
        "other": make_connection(tenant_a, other_club, platform=Platform.X, account_id="x2"),
    }


def _targets(campaign):
    return sorted(
        (p.connection.account_id, p.status, p.scheduled_at)
        for p in Publication.objects.filter(post__campaign=campaign).select_related("connection")
    )


def test_an_email_and_social_campaign_sends_and_posts(tenant_a, club_a, accounts):
    make_member(tenant_a, "ann@example.com", email_opt_in=True)
    campaign = make_campaign(
        tenant_a,
        club=club_a,
        channels=["email", "social"],
        social_text="Open week: come and play",
        social_link="https://club.example/open",
    )
    run = run_to_completion(campaign)

    assert Message.objects.filter(campaign=campaign, channel="email").count() == 1
    assert not Message.objects.filter(campaign=campaign).exclude(channel="email").exists()
    # X only: Instagram needs an image, Facebook needs attention, x2 is another club's.
    assert _targets(campaign) == [("x1", PublicationStatus.SCHEDULED, NOON_JHB)]
    post = Post.objects.get(campaign=campaign)
    assert (post.content, post.link, post.campaign_run_id) == (
        "Open week: come and play",
        "https://club.example/open",
        run.pk,
    )
    assert campaign_stats(campaign=campaign)["social"] == {
        "published": 0,
        "failed": 0,
        "pending": 1,
        "held": 0,
        "cancelled": 0,
    }
    Publication.objects.filter(post=post).update(status=PublicationStatus.PUBLISHED)
    stats = campaign_stats(campaign=campaign)
    assert (stats["social"]["published"], stats["sent"]) == (1, 1)


def test_a_social_only_campaign_needs_no_segment_and_posts_once(tenant_a, club_a, accounts):
    campaign = Campaign.objects.create(
        tenant=tenant_a,
        club=club_a,
        name="Posts only",
        channels=["social"],
        social_text="Course open at 7",
        scheduled_at=NOON_JHB,
    )
    run = run_to_completion(campaign)
    # A second prepare of the same run (a redelivered task) posts nothing more.
    run_prepare(run=CampaignRun.objects.get(pk=run.pk), now=NOON_JHB)
    assert _targets(campaign) == [("x1", PublicationStatus.SCHEDULED, NOON_JHB)]
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.COMPLETED
    assert campaign_stats(campaign=campaign)["targeted"] == 0


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ({"social_text": ""}, "social_text", "needs the post's text"),
        ({"club": None}, "club", "choose the club"),
        ({"club": "empty"}, "channels", "no active social account"),
    ],
)
def test_a_social_campaign_is_validated_before_scheduling(
    tenant_a, club_a, accounts, extra, field, words
):
    club = club_a
    if extra.get("club") == "empty":
        club = ClubFactory(tenant=tenant_a, name="No Accounts")
    elif "club" in extra:
        club = None
    campaign = Campaign.objects.create(
        tenant=tenant_a,
        club=club,
        name="Posts only",
        channels=["social"],
        social_text=extra.get("social_text", "Course open at 7"),
        scheduled_at=NOON_JHB,
    )
    with pytest.raises(ValidationError) as refused:
        campaign_schedule(campaign=campaign)
    assert words in " ".join(refused.value.message_dict[field]).lower()
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


def test_the_api_takes_the_social_channel(api_a, tenant_a, club_a, accounts):
    response = api_a.post(
        "/api/v1/campaigns",
        {
            "name": "Posts only",
            "club_id": str(club_a.pk),
            "channels": ["social"],
            "social_text": "Course open at 7",
            "scheduled_at": "2026-11-24T12:00:00Z",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["channels"] == ["social"]
    bad = api_a.post(
        "/api/v1/campaigns",
        {"name": "Nope", "channels": ["telegraph"]},
        format="json",
    )
    assert bad.status_code == 400


def test_the_campaign_results_page_shows_the_posts(client, staff_a, tenant_a, club_a, accounts):
    campaign = Campaign.objects.create(
        tenant=tenant_a,
        club=club_a,
        name="Posts only",
        channels=["social"],
        social_text="Course open at 7",
        scheduled_at=NOON_JHB,
    )
    run_to_completion(campaign)
    Publication.objects.filter(post__campaign=campaign).update(status=PublicationStatus.FAILED)
    client.force_login(staff_a)
    page = client.get(f"/admin/marketing/campaign/{campaign.pk}/stats/").content.decode()
    table = page.split('data-testid="social-stats"')[1].split("</table>")[0]
    assert 'failed</td><td class="font-semibold">1' in table
    assert 'published</td><td class="font-semibold">0' in table
