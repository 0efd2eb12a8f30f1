"""generate_demo_data: realistic members, valid local phones, re-runnable."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import phonenumbers
import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from customers.handlers import NOT_ENGAGEMENT_TYPES, minor_units
from customers.identity import IdentityHints
from customers.models import (
    Activity,
    AliasKind,
    ConsentRecord,
    CustomerProfile,
    IdentityAlias,
    MergeSuggestion,
)
from customers.services import identity_resolve
from marketing.campaigns import campaign_stats
from marketing.models import (
    Campaign,
    CampaignStatus,
    Interaction,
    Message,
    Segment,
    SegmentMembership,
    Suppression,
)

pytestmark = pytest.mark.django_db


def _generate(tenant, n: int, *extra: str) -> str:
    out = StringIO()
    call_command(
        "generate_demo_data", "--tenant", tenant.slug, "--customers", str(n), *extra, stdout=out
    )
    return out.getvalue()


@pytest.mark.parametrize(
    ("fixture", "region", "country_code"),
    [
        ("tenant_a", "ZA", 27),
        ("tenant_b", "GB", 44),
    ],
)
def test_members_have_valid_local_phones_unique_emails_and_aliases(
    request, fixture, region, country_code
):
    tenant = request.getfixturevalue(fixture)

    output = _generate(tenant, 300)

    profiles = CustomerProfile.objects.for_tenant(tenant)
    assert "Generated 300 profiles" in output
    assert profiles.count() == 300
    phones = list(profiles.values_list("phone", flat=True))
    for phone in phones:
        number = phonenumbers.parse(phone)
        assert phonenumbers.is_valid_number(number), phone
        assert number.country_code == country_code
    emails = list(profiles.values_list("email", flat=True))
    assert len(set(emails)) == 300
    assert IdentityAlias.objects.for_tenant(tenant).filter(kind=AliasKind.EMAIL).count() == 300
    assert profiles.exclude(home_club__tenant=tenant).count() == 0
    assert set(profiles.values_list("currency", flat=True)) == {tenant.currency}


def test_generated_people_resolve(tenant_a):
    _generate(tenant_a, 50)
    person = CustomerProfile.objects.for_tenant(tenant_a).first()

    resolution = identity_resolve(
        tenant=tenant_a, hints=IdentityHints(email=person.email, phone=person.phone)
    )

    assert resolution.profile.pk == person.pk
    assert resolution.matched_by == ["email", "phone"]


def test_a_second_run_adds_people_without_collisions(tenant_a):
    _generate(tenant_a, 100)
    _generate(tenant_a, 100)

    assert CustomerProfile.objects.for_tenant(tenant_a).count() == 200
    assert CustomerProfile.objects.for_tenant(tenant_a).values("email").distinct().count() == 200


def test_if_empty_does_nothing_when_customers_exist(tenant_a):
    _generate(tenant_a, 10)

    output = _generate(tenant_a, 10, "--if-empty")

    assert "nothing generated" in output
    assert CustomerProfile.objects.for_tenant(tenant_a).count() == 10


# --- demo_club: a demo club that looks alive -----------------------------------------------


def _alive(tenant) -> str:
    out = StringIO()
    call_command("demo_club", "--tenant", tenant.slug, stdout=out)
    return out.getvalue()


def _state(tenant) -> dict:
    """Everything demo_club writes, as a user would count it."""
    profiles = CustomerProfile.objects.for_tenant(tenant)
    return {
        "profiles": profiles.count(),
        "activities": Activity.objects.for_tenant(tenant).count(),
        "memberships": sorted(
            SegmentMembership.objects.for_tenant(tenant).values_list("segment__name", "customer_id")
        ),
        "segments": Segment.objects.for_tenant(tenant).count(),
        "campaigns": Campaign.objects.for_tenant(tenant).count(),
        "messages": Message.objects.for_tenant(tenant).count(),
        "interactions": Interaction.objects.for_tenant(tenant).count(),
        "suggestions": MergeSuggestion.objects.for_tenant(tenant).count(),
        "consent_records": ConsentRecord.objects.for_tenant(tenant).count(),
        "suppressions": Suppression.objects.for_tenant(tenant).count(),
        "metrics": sorted(
            profiles.values_list(
                "id",
                "last_activity_at",
                "last_activity_type",
                "activity_count_30d",
                "lifetime_value_minor",
                "handicap_index",
                "email_opt_in",
            )
        ),
    }


@pytest.fixture
def demo_club(tenant_a):
    with time_machine.travel(timezone.now(), tick=False):
        _generate(tenant_a, 200)
        before = dict(
            CustomerProfile.objects.for_tenant(tenant_a).values_list("id", "lifetime_value_minor")
        )
        output = _alive(tenant_a)
        first = _state(tenant_a)
        again = _alive(tenant_a)
        second = _state(tenant_a)
    return tenant_a, before, output, first, again, second


def test_members_have_90_days_of_activity_with_matching_metrics(demo_club):
    tenant, before, output, *_ = demo_club
    now = timezone.now()
    members = CustomerProfile.objects.for_tenant(tenant).filter(lifecycle_stage="MEMBER")

    assert "new activities" in output
    with_timeline = members.filter(activities__isnull=False).distinct().count()
    assert with_timeline == members.count()
    activities = Activity.objects.for_tenant(tenant)
    assert set(activities.values_list("category", flat=True)) >= {"golf", "commerce", "marketing"}
    assert activities.filter(type="teetime.competition.entered").exists()
    assert activities.filter(occurred_at__lt=now - timedelta(days=91)).count() == 0
    for profile in members.filter(activities__isnull=False).distinct()[:25]:
        engagement = activities.filter(customer=profile).exclude(type__in=NOT_ENGAGEMENT_TYPES)
        latest = engagement.order_by("-occurred_at", "-id").first()
        assert profile.last_activity_at == latest.occurred_at
        assert (
            profile.activity_count_30d
            == engagement.filter(
                occurred_at__gt=now - timedelta(days=30), occurred_at__lte=now
            ).count()
        )
        paid = sum(
            minor_units(a.metadata["amount"], a.metadata["currency"])
            for a in activities.filter(customer=profile, type="teetime.booking.paid")
        )
        assert profile.lifetime_value_minor == before[profile.pk] + paid


def test_segments_have_members_and_a_campaign_has_results(demo_club):
    tenant, *_ = demo_club

    for segment in Segment.objects.for_tenant(tenant):
        members = SegmentMembership.objects.filter(tenant=tenant, segment=segment).count()
        assert members > 0, segment.name
        assert segment.member_count == members
        assert segment.last_refreshed_at is not None
    campaign = Campaign.objects.for_tenant(tenant).get(status=CampaignStatus.COMPLETED)
    stats = campaign_stats(campaign=campaign)
    assert stats["sent"] > 20 and stats["skipped"] > 0
    assert stats["delivered"] == stats["sent"] - 1
    assert stats["bounced"] == 1 and stats["unsubscribed"] == 1
    assert 0 < stats["clicked"] < stats["opened"] < stats["delivered"]
    unsubscribed = Interaction.objects.get(tenant=tenant, kind="UNSUBSCRIBED")
    person = CustomerProfile.objects.get(pk=unsubscribed.customer_id)
    assert not person.email_opt_in and person.email_consent_source == "unsubscribed"
    assert Suppression.objects.filter(tenant=tenant, channel="email").count() == 2


def test_merge_suggestions_wait_for_review(demo_club):
    tenant, *_ = demo_club

    pending = MergeSuggestion.objects.for_tenant(tenant).filter(status="PENDING")
    assert pending.count() == 3
    for suggestion in pending:
        assert suggestion.profile.full_name == suggestion.candidate.full_name


def test_running_it_twice_changes_nothing(demo_club):
    *_, first, again, second = demo_club

    assert "0 new activities" in again
    assert "0 new merge suggestions" in again
    assert "0 new interactions" in again
    assert first == second
