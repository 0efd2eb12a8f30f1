"""The segment and campaign lists answer questions: members and their 7-day trend, and each
campaign's sent count with open and click rates, computed for the whole page at once."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from marketing.models import CampaignRun, Interaction, Message, Segment, SegmentType
from marketing.segments import segment_members_add, segment_members_remove

from .builders import NOON_JHB, make_campaign, make_member

pytestmark = pytest.mark.django_db
_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def _midday():
    with time_machine.travel(NOON_JHB - timedelta(minutes=10), tick=True):
        yield


@pytest.fixture
def console(client, staff_a):
    client.force_login(staff_a)
    return client


def _results(tenant, campaign, people, *, opened: int, clicked: int) -> None:
    run = CampaignRun.objects.create(tenant=tenant, campaign=campaign, scheduled_for=NOON_JHB)
    for index, profile in enumerate(people):
        message = Message.objects.create(
            tenant=tenant,
            run=run,
            campaign=campaign,
            customer=profile,
            channel="email",
            address=profile.email,
            status="SENT",
            sent_at=NOON_JHB,
        )
        kinds = ["DELIVERED"]
        kinds += ["OPENED"] if index < opened else []
        kinds += ["CLICKED"] if index < clicked else []
        for kind in kinds:
            Interaction.objects.create(
                tenant=tenant,
                message=message,
                campaign=campaign,
                customer=profile,
                kind=kind,
                source="test",
                event_id=f"e{next(_ids)}",
                occurred_at=NOON_JHB,
            )


def test_campaign_list_shows_sent_and_rates(console, tenant_a):
    people = [make_member(tenant_a, f"p{i}@example.com") for i in range(8)]
    campaign = make_campaign(tenant_a, name="Spring Medal")
    _results(tenant_a, campaign, people, opened=4, clicked=1)
    make_campaign(tenant_a, name="Draft idea")

    html = console.get("/admin/marketing/campaign/").content.decode()

    assert "Spring Medal" in html
    assert "50.0%" in html  # 4 of 8 opened
    assert "12.5%" in html  # 1 of 8 clicked


def test_campaign_list_costs_the_same_for_more_campaigns(console, tenant_a):
    people = [make_member(tenant_a, f"p{i}@example.com") for i in range(3)]

    def grow(n: int) -> None:
        for _ in range(n):
            campaign = make_campaign(tenant_a, name=f"Campaign {next(_ids)}")
            _results(tenant_a, campaign, people, opened=2, clicked=1)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert console.get("/admin/marketing/campaign/").status_code == 200
        return len(captured)

    grow(1)
    few = queries()
    grow(5)
    assert queries() == few


def test_segment_list_shows_members_and_the_weeks_trend(console, tenant_a):
    people = [make_member(tenant_a, f"p{i}@example.com") for i in range(5)]
    segment = Segment.objects.create(tenant=tenant_a, name="Invited", type=SegmentType.STATIC)
    segment_members_add(segment=segment, customer_ids=[p.pk for p in people])
    segment_members_remove(segment=segment, customer_ids=[people[0].pk])

    html = console.get("/admin/marketing/segment/").content.decode()

    assert "Invited" in html
    assert "+4 (+5 / -1)" in html


def test_segment_trend_ignores_changes_older_than_a_week(console, tenant_a):
    people = [make_member(tenant_a, f"p{i}@example.com") for i in range(2)]
    segment = Segment.objects.create(tenant=tenant_a, name="Old", type=SegmentType.STATIC)
    with time_machine.travel(timezone.now() - timedelta(days=10), tick=False):
        segment_members_add(segment=segment, customer_ids=[people[0].pk])
    segment_members_add(segment=segment, customer_ids=[people[1].pk])

    html = console.get("/admin/marketing/segment/").content.decode()

    assert "+1 (+1 / -0)" in html
