"""The customer page (Customer 360): a header card with money in the tenant's currency,
consent chips and identifiers; the timeline and notes as the body; segments, messages with
their outcomes and merges beside them; the raw fields folded away, for tenant admins only;
and a query count that does not grow with the person's history."""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crm.formatting import money_format
from crm.models import StaffRole
from customers.models import Activity, CustomerProfile, Note
from customers.services import profile_merge
from marketing.models import (
    CampaignRun,
    Interaction,
    Message,
    MessageStatus,
    Segment,
    SegmentType,
    SkipReason,
)
from marketing.segments import segment_members_add
from tests.customers.helpers import person
from tests.factories import StaffMembershipFactory, UserFactory
from tests.marketing.builders import make_campaign

pytestmark = pytest.mark.django_db
_ids = itertools.count(1)


@pytest.fixture
def console(client, staff_a):
    client.force_login(staff_a)
    return client


def _url(profile) -> str:
    return f"/admin/customers/customerprofile/{profile.pk}/change/"


def _golfer(tenant, **fields):
    profile = person(tenant, email="thabo@example.co.za", first_name="Thabo", last_name="Nkosi")
    now = timezone.now()
    CustomerProfile.objects.filter(pk=profile.pk).update(
        lifetime_value_minor=4_785_916,
        currency=tenant.currency,
        membership_type="Full",
        membership_status="ACTIVE",
        handicap_index=Decimal("12.4"),
        email_opt_in=True,
        email_consent_at=now - timedelta(days=30),
        email_consent_source="mca_v1",
        sms_opt_in=False,
        sms_consent_at=now - timedelta(days=3),
        sms_consent_source="unsubscribe_link",
        **fields,
    )
    profile.refresh_from_db()
    return profile


def _activities(tenant, profile, n: int) -> None:
    now = timezone.now()
    Activity.objects.bulk_create(
        Activity(
            tenant=tenant,
            customer=profile,
            type="teetime.round.completed",
            category="golf",
            title=f"Played 18 holes ({i})",
            source_service="teetime",
            source_event_id=f"ev-{next(_ids)}",
            occurred_at=now - timedelta(hours=i + 1),
        )
        for i in range(n)
    )


def _segment(tenant, profile, name: str) -> Segment:
    segment = Segment.objects.create(tenant=tenant, name=name, type=SegmentType.STATIC)
    segment_members_add(segment=segment, customer_ids=[profile.pk])
    return segment


def _message(tenant, profile, *, status=MessageStatus.SENT, kinds=(), skip_reason=""):
    campaign = make_campaign(tenant, name=f"Campaign {next(_ids)}")
    run = CampaignRun.objects.create(tenant=tenant, campaign=campaign, scheduled_for=timezone.now())
    message = Message.objects.create(
        tenant=tenant,
        run=run,
        campaign=campaign,
        customer=profile,
        channel="email",
        address=profile.email,
        status=status,
        skip_reason=skip_reason,
        sent_at=timezone.now() if status == MessageStatus.SENT else None,
    )
    for kind in kinds:
        Interaction.objects.create(
            tenant=tenant,
            message=message,
            campaign=campaign,
            customer=profile,
            kind=kind,
            source="test",
            event_id=f"i-{next(_ids)}",
            occurred_at=timezone.now(),
        )
    return campaign


@pytest.mark.parametrize(
    ("minor", "currency", "shown"),
    [
        (4_785_916, "ZAR", "R 47,859.16"),
        (4_785_916, "GBP", "£47,859.16"),
        (5, "ZAR", "R 0.05"),
        (-150, "GBP", "-£1.50"),
        (1200, "XYZ", "12.00 XYZ"),
    ],
)
def test_money_is_shown_in_the_currency(minor, currency, shown):
    assert money_format(minor=minor, currency=currency) == shown


def test_header_card_shows_who_the_person_is(console, tenant_a, club_a):
    profile = _golfer(tenant_a, home_club_id=club_a.pk, engagement_score=72)

    response = console.get(_url(profile))
    html = response.content.decode()

    person_card = response.context["person"]
    assert person_card["lifetime_value"] == "R 47,859.16"
    assert "R 47,859.16" in html and "4785916" not in html.split('id="customerprofile_form"')[0]
    assert person_card["club"] == club_a.name
    assert person_card["membership_status"] == "Active"
    assert person_card["membership_tone"] == "success"
    assert 'data-testid="engagement-score">72/100' in html
    assert 'data-testid="churn-risk"' not in html  # not scored yet: not shown
    chips = {chip["channel"]: chip for chip in response.context["consent_chips"]}
    assert chips["email"]["opt_in"] and chips["email"]["source"] == "mca_v1"
    assert chips["sms"]["decided"] and not chips["sms"]["opt_in"]
    assert not chips["push"]["decided"]
    assert "opted out · unsubscribe_link" in html
    assert ("Email", "thabo@example.co.za") in response.context["identifiers"]


def test_a_uk_customer_sees_pounds(client, tenant_b):
    staff = StaffMembershipFactory(tenant=tenant_b, user=UserFactory(username="olly")).user
    client.force_login(staff)
    profile = _golfer(tenant_b)

    assert "£47,859.16" in client.get(_url(profile)).content.decode()


def test_the_timeline_comes_before_the_raw_fields(console, tenant_a):
    profile = _golfer(tenant_a)
    _activities(tenant_a, profile, 3)

    html = console.get(_url(profile)).content.decode()

    header = html.index('data-testid="customer-header"')
    timeline = html.index('data-testid="timeline"')
    form = html.index('id="customerprofile_form"')
    assert header < timeline < form
    assert html.count('data-testid="activity"') == 3


def test_segments_messages_and_merges_are_beside_the_timeline(console, tenant_a):
    profile = _golfer(tenant_a)
    _segment(tenant_a, profile, "Weekend regulars")
    _message(tenant_a, profile, kinds=["DELIVERED", "OPENED", "CLICKED"])
    _message(tenant_a, profile, status=MessageStatus.SKIPPED, skip_reason=SkipReason.FREQUENCY_CAP)
    duplicate = person(tenant_a, email="thabo.nkosi@work.example")
    profile_merge(tenant=tenant_a, winner=profile, loser=duplicate, actor="staff:anna", reason="")

    html = console.get(_url(profile)).content.decode()

    assert "Weekend regulars" in html
    assert html.count('data-testid="message"') == 2
    assert "Skipped: Frequency cap" in html
    assert html.count('data-testid="interaction"') == 3
    merges = html[html.index('data-testid="merges"') :]
    assert "absorbed thabo.nkosi@work.example" in merges
    assert "by staff:anna" in merges


def test_raw_fields_are_folded_and_for_tenant_admins_only(console, client, tenant_a):
    profile = _golfer(tenant_a)

    admin_html = console.get(_url(profile)).content.decode()
    assert "Activity and value" in admin_html  # the raw sections, folded
    assert "Lifetime value minor" in admin_html

    marketer = StaffMembershipFactory(
        tenant=tenant_a, user=UserFactory(username="mia"), role=StaffRole.MARKETER
    ).user
    client.force_login(marketer)
    html = client.get(_url(profile)).content.decode()
    assert "R 47,859.16" in html
    assert "Lifetime value minor" not in html
    assert "Activity and value" not in html
    assert "Edit details" in html


def test_the_page_costs_the_same_queries_however_long_the_history(console, tenant_a):
    profile = _golfer(tenant_a)

    def grow(n: int) -> None:
        _activities(tenant_a, profile, n)
        for _ in range(n):
            _segment(tenant_a, profile, f"Segment {next(_ids)}")
            _message(tenant_a, profile, kinds=["DELIVERED", "OPENED"])
            Note.objects.create(
                tenant=tenant_a,
                customer=profile,
                body="Called",
                author_ref="user:0",
                author_name="anna",
            )
            duplicate = person(tenant_a, email=f"dup{next(_ids)}@example.com")
            profile_merge(tenant=tenant_a, winner=profile, loser=duplicate, actor="t", reason="")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert console.get(_url(profile)).status_code == 200
        return len(captured)

    grow(1)
    queries()  # process-wide caches (content types, for the admin's log) are filled once
    few = queries()
    grow(5)
    many = queries()
    assert few == many
    assert many <= 40


def test_a_marketer_corrects_details_from_the_folded_form(client, tenant_a, club_a):
    profile = _golfer(tenant_a)
    marketer = StaffMembershipFactory(
        tenant=tenant_a, user=UserFactory(username="mia"), role=StaffRole.MARKETER
    ).user
    client.force_login(marketer)

    response = client.post(
        _url(profile),
        {
            "first_name": "Thabang",
            "last_name": "Nkosi",
            "date_of_birth": "",
            "home_club": str(club_a.pk),
            "lifecycle_stage": "MEMBER",
            "tags": "",
        },
    )

    assert response.status_code == 302
    profile.refresh_from_db()
    assert (profile.first_name, profile.home_club_id) == ("Thabang", club_a.pk)
    assert profile.lifetime_value_minor == 4_785_916  # untouched: not on the form
