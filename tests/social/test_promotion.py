"""Competition auto-promotion: one promotion per competition, its announcement, posts and
reminders in the club's timezone, a date change, a cancellation, entrants left out."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
import time_machine
from django.db import connection as db

from crm.celery import set_queue_override
from customers.models import Activity, CustomerProfile
from marketing.models import Campaign, CampaignStatus, MessageTemplate
from marketing.segments import segment_refresh
from social.models import (
    ClubSocialSettings,
    Platform,
    Promotion,
    PromotionReminder,
    Publication,
    PublicationStatus,
    ReminderStatus,
)
from social.promotion import competition_event_handle, reminder_time
from tests.customers.helpers import person
from tests.events.helpers import event, ingest, run
from tests.factories import ClubFactory

from .helpers import make_connection

NOW = datetime(2027, 3, 1, 10, 0, tzinfo=UTC)
PUBLISHED = "teetime.competition.published"


@pytest.fixture(autouse=True)
def _frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def club(tenant_a):
    # London: BST starts on 28 March 2027, between the reminders below.
    club = ClubFactory(tenant=tenant_a, name="Royal Test", timezone="Europe/London")
    ClubSocialSettings.objects.create(
        tenant=tenant_a,
        club=club,
        auto_promote=True,
        channels=["email", "sms", "social"],
        send_hour=9,
    )
    return club


@pytest.fixture
def accounts(tenant_a, club):
    return [
        make_connection(tenant_a, club, platform=Platform.X, account_id="x1"),
        make_connection(
            tenant_a, club, platform=Platform.INSTAGRAM, account_id="ig1", refresh_token=None
        ),
    ]


def _payload(club, **extra):
    return {
        "competitionId": "C-77",
        "name": "Spring Medal",
        "startsAt": "2027-04-02T08:00:00Z",
        "clubId": str(club.pk),
        "url": "https://teetime.example/c/77",
        **extra,
    }


def _handle(tenant, type_, payload):
    return competition_event_handle(tenant=tenant, type=type_, payload=payload, now=NOW)


def _reminders(promotion):
    return {
        r.days_before: (r.send_at, r.status, r.campaign.status, r.campaign.scheduled_at)
        for r in PromotionReminder.objects.filter(promotion=promotion).select_related("campaign")
    }


def test_a_published_competition_is_announced_posted_and_reminded(tenant_a, club, accounts):
    promotion = _handle(tenant_a, PUBLISHED, _payload(club))

    announcement = promotion.campaign
    assert announcement.status == CampaignStatus.SCHEDULED
    assert announcement.channels == ["email", "sms"]
    assert announcement.scheduled_at == NOW
    assert announcement.segment.name == "Members of Royal Test"
    assert "Spring Medal" in announcement.email_template.subject
    assert "02 April 2027, 09:00" in announcement.sms_template.body  # local time, BST
    # 7 days before: 26 March, still GMT; 3 and 1 days before: BST (UTC+1).
    assert {d: r[0] for d, r in _reminders(promotion).items()} == {
        7: datetime(2027, 3, 26, 9, 0, tzinfo=UTC),
        3: datetime(2027, 3, 30, 8, 0, tzinfo=UTC),
        1: datetime(2027, 4, 1, 8, 0, tzinfo=UTC),
    }
    for send_at, status, campaign_status, scheduled_at in _reminders(promotion).values():
        assert (status, campaign_status, scheduled_at) == (
            ReminderStatus.PENDING,
            CampaignStatus.SCHEDULED,
            send_at,
        )
    # The text-only post goes to X; Instagram (needs an image) is left out.
    publications = Publication.objects.filter(post__promotion=promotion)
    assert [(p.connection.platform, p.status, p.scheduled_at) for p in publications] == [
        (Platform.X, PublicationStatus.SCHEDULED, NOW)
    ]
    assert "Spring Medal" in publications[0].post.content


def test_the_same_event_twice_promotes_once(tenant_a, club, accounts):
    first = _handle(tenant_a, PUBLISHED, _payload(club))
    counts = (
        Campaign.objects.count(),
        MessageTemplate.objects.count(),
        Publication.objects.count(),
    )
    second = _handle(tenant_a, PUBLISHED, _payload(club))
    assert second.pk == first.pk
    assert Promotion.objects.count() == 1
    assert (
        Campaign.objects.count(),
        MessageTemplate.objects.count(),
        Publication.objects.count(),
    ) == counts
    assert PromotionReminder.objects.count() == 3


def test_no_promotion_when_the_club_does_not_auto_promote(tenant_a, club):
    ClubSocialSettings.objects.filter(club=club).update(auto_promote=False)
    assert _handle(tenant_a, PUBLISHED, _payload(club)) is None
    assert not Campaign.objects.exists()


def test_reminders_leave_out_people_who_entered(tenant_a, club, accounts):
    promotion = _handle(tenant_a, PUBLISHED, _payload(club))
    entered, waiting, elsewhere = (
        person(tenant_a, email=f"{n}@example.com") for n in ("in", "out", "other")
    )
    CustomerProfile.objects.filter(pk__in=[entered.pk, waiting.pk]).update(
        home_club=club, lifecycle_stage="MEMBER"
    )
    CustomerProfile.objects.filter(pk=elsewhere.pk).update(lifecycle_stage="MEMBER")
    Activity.objects.create(
        tenant=tenant_a,
        customer=entered,
        type="teetime.competition.entered",
        category="golf",
        title="Entered Spring Medal",
        source_service="teetime",
        source_id="C-77",
        source_event_id="e-1",
        occurred_at=NOW - timedelta(hours=1),
    )
    members = promotion.campaign.segment
    segment_refresh(segment=members, now=NOW)
    reminder = PromotionReminder.objects.get(promotion=promotion, days_before=7)
    not_entered = reminder.campaign.segment
    segment_refresh(segment=not_entered, now=NOW)
    in_members = set(members.memberships.values_list("customer__email", flat=True))
    in_reminder = set(not_entered.memberships.values_list("customer__email", flat=True))
    assert in_members == {"in@example.com", "out@example.com"}
    assert in_reminder == {"out@example.com"}


def test_a_new_start_date_moves_the_pending_reminders(tenant_a, club, accounts):
    promotion = _handle(tenant_a, PUBLISHED, _payload(club))
    _handle(
        tenant_a,
        "teetime.competition.updated",
        {"competitionId": "C-77", "startsAt": "2027-04-09T08:00:00Z"},
    )
    assert {d: (r[0], r[3]) for d, r in _reminders(promotion).items()} == {
        7: (datetime(2027, 4, 2, 8, 0, tzinfo=UTC),) * 2,
        3: (datetime(2027, 4, 6, 8, 0, tzinfo=UTC),) * 2,
        1: (datetime(2027, 4, 8, 8, 0, tzinfo=UTC),) * 2,
    }
    # Brought forward to 5 March: the 7-day reminder would be in the past and is cancelled.
    _handle(
        tenant_a,
        "teetime.competition.updated",
        {"competitionId": "C-77", "startsAt": "2027-03-05T10:00:00Z"},
    )
    reminders = _reminders(promotion)
    assert reminders[7][1:3] == (ReminderStatus.CANCELLED, CampaignStatus.CANCELLED)
    assert reminders[3][0] == datetime(2027, 3, 2, 9, 0, tzinfo=UTC)
    assert reminders[1][0] == datetime(2027, 3, 4, 9, 0, tzinfo=UTC)


def test_a_cancelled_competition_cancels_what_has_not_gone(tenant_a, club, accounts):
    promotion = _handle(tenant_a, PUBLISHED, _payload(club))
    _handle(tenant_a, "teetime.competition.cancelled", {"competitionId": "C-77"})
    promotion.refresh_from_db()
    assert promotion.status == "CANCELLED"
    assert {r[1:3] for r in _reminders(promotion).values()} == {
        (ReminderStatus.CANCELLED, CampaignStatus.CANCELLED)
    }
    assert promotion.campaign.status == CampaignStatus.CANCELLED
    assert set(
        Publication.objects.filter(post__promotion=promotion).values_list("status", flat=True)
    ) == {PublicationStatus.CANCELLED}


def test_another_tenant_s_competition_event_touches_nothing_here(
    tenant_a, tenant_b, club, accounts
):
    _handle(tenant_a, PUBLISHED, _payload(club))
    # Tenant B names tenant A's club and competition id: no club of B, nothing happens.
    assert _handle(tenant_b, PUBLISHED, _payload(club)) is None
    assert _handle(tenant_b, "teetime.competition.cancelled", {"competitionId": "C-77"}) is None
    assert Promotion.objects.get().status == "ACTIVE"


def test_reminder_time_is_the_local_send_hour():
    start = datetime(2027, 10, 31, 6, 0, tzinfo=UTC)  # London back on GMT that morning
    assert reminder_time(starts_at=start, days_before=1, tz="Europe/London", hour=9) == datetime(
        2027, 10, 30, 8, 0, tzinfo=UTC
    )
    assert reminder_time(
        starts_at=start, days_before=1, tz="Africa/Johannesburg", hour=18
    ) == datetime(2027, 10, 30, 16, 0, tzinfo=UTC)


def test_a_published_event_reaches_the_promotion_through_the_pipeline(
    tenant_a, club, accounts, settings, django_capture_on_commit_callbacks
):
    """Ingested and processed like any event: validated against the catalog, handed to the
    subscriber, which queues ``social.competition_event``; running that message promotes."""
    queue = f"test-social-{uuid.uuid4().hex[:8]}"
    broker = redis.Redis.from_url(settings.REDIS_URL.replace("redis+socket://", "unix://", 1))
    set_queue_override(queue)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            run(tenant_a, event(tenant_a, PUBLISHED, payload=_payload(club)))
        queued = [json.loads(raw) for raw in broker.lrange(queue, 0, -1)]
    finally:
        set_queue_override(None)
        broker.delete(queue)
    [message] = [m for m in queued if m["headers"]["task"] == "social.competition_event"]
    args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    assert args == [str(tenant_a.pk)]
    promotion = competition_event_handle(tenant=tenant_a, now=NOW, **kwargs)
    assert (promotion.source_id, promotion.name) == ("C-77", "Spring Medal")


def test_competition_events_are_validated_by_the_catalog(tenant_a):
    rejected = ingest(
        tenant_a,
        event(tenant_a, "teetime.competition.updated", payload={"startsAt": "not a date"}),
        event(tenant_a, "teetime.competition.cancelled", payload={}),
    )
    assert rejected.accepted == []
    fields = [sorted(r.errors) for r in rejected.rejected]
    assert fields == [["payload.competitionId", "payload.startsAt"], ["payload.competitionId"]]


@pytest.mark.django_db(transaction=True)
def test_two_deliveries_of_the_event_at_once_promote_once(tenant_a, club, accounts):
    results: list = []
    start = threading.Barrier(2)

    def deliver():
        try:
            start.wait(5)
            results.append(_handle(tenant_a, PUBLISHED, _payload(club)).pk)
        finally:
            db.close()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(results) == 2 and results[0] == results[1]
    assert Promotion.objects.count() == 1
    assert PromotionReminder.objects.count() == 3
    assert Publication.objects.count() == 1
    assert Campaign.objects.count() == 4  # the announcement and three reminders
