"""The pipeline's processing: identity, activities, each type's handler, metrics, order."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from crm.registry import register_event_subscriber, unregister_event_subscriber
from customers import handlers
from customers import ingest as ingest_module
from customers.handlers import activity_count_recompute
from customers.models import (
    Activity,
    CustomerProfile,
    IdentityAlias,
    LifecycleStage,
    SyncLogEntry,
    SyncStatus,
)
from customers.timeline import Author, note_create
from marketing.interactions import interaction_record
from marketing.models import Campaign, CampaignRun, Message, MessageStatus
from tests.customers.helpers import person

from .helpers import at, event, ingest, process_pending, run, ts

pytestmark = pytest.mark.django_db


def profile_of(tenant, **hints):
    alias = IdentityAlias.objects.get(
        tenant=tenant, kind=next(iter(hints)), value=next(iter(hints.values()))
    )
    return CustomerProfile.objects.get(pk=alias.profile_id)


def test_member_created_sets_membership_and_makes_a_member(tenant_a):
    run(
        tenant_a,
        event(
            tenant_a,
            "scl.member.created",
            {"sclMemberId": "SCL1", "email": "Thabo@Example.com"},
            {
                "membershipType": "Full",
                "joinedOn": "2026-01-10",
                "renewalOn": "2027-01-10",
                "firstName": "Thabo",
                "lastName": "Nkosi",
            },
        ),
    )
    profile = profile_of(tenant_a, email="thabo@example.com")
    assert profile.scl_member_id == "SCL1"
    assert (profile.first_name, profile.last_name) == ("Thabo", "Nkosi")
    assert profile.membership_type == "Full"
    assert profile.membership_status == "ACTIVE"
    assert profile.membership_joined_on == date(2026, 1, 10)
    assert profile.membership_renewal_on == date(2027, 1, 10)
    assert profile.lifecycle_stage == LifecycleStage.MEMBER
    activity = Activity.objects.get(customer=profile)
    assert (activity.category, activity.title) == ("membership", "Joined as Full member")


def test_member_lapsed_then_renewed(tenant_a):
    member = person(tenant_a, scl_member_id="SCL2")
    run(
        tenant_a, event(tenant_a, "scl.member.lapsed", {"sclMemberId": "SCL2"}, {}, timestamp=at(2))
    )
    member.refresh_from_db()
    assert (member.membership_status, member.lifecycle_stage) == ("LAPSED", "LAPSED")
    run(
        tenant_a,
        event(tenant_a, "scl.member.renewed", {"sclMemberId": "SCL2"}, {"renewalOn": "2027-12-31"}),
    )
    member.refresh_from_db()
    assert member.membership_status == "ACTIVE"
    assert member.lifecycle_stage == LifecycleStage.MEMBER
    assert member.membership_renewal_on == date(2027, 12, 31)


def test_an_older_member_update_does_not_overwrite_a_newer_one(tenant_a):
    member = person(tenant_a, scl_member_id="SCL3")
    run(
        tenant_a,
        event(
            tenant_a,
            "scl.member.updated",
            {"sclMemberId": "SCL3"},
            {"membershipType": "Senior"},
            timestamp=at(1),
        ),
    )
    run(
        tenant_a,
        event(
            tenant_a,
            "scl.member.updated",
            {"sclMemberId": "SCL3"},
            {"membershipType": "Full"},
            timestamp=at(5),
        ),
    )
    member.refresh_from_db()
    assert member.membership_type == "Senior"


def test_a_batch_locks_its_known_profiles_once_and_its_new_people_not_at_all(tenant_a, monkeypatch):
    """The guard facts come from the one lock a batch takes on its known people (or, for
    the people it creates, from what it wrote): the guards still hold, in one read."""
    member = person(tenant_a, scl_member_id="SCL9")
    run(
        tenant_a,
        event(
            tenant_a, "scl.member.updated", {"sclMemberId": "SCL9"}, {"membershipType": "Senior"}
        ),
    )
    calls: list[tuple[set, bool]] = []
    real = handlers.profiles_lock

    def spy(tenant, profile_ids, *, skip_locked=False):
        calls.append((set(profile_ids), skip_locked))
        return real(tenant, profile_ids, skip_locked=skip_locked)

    monkeypatch.setattr(handlers, "profiles_lock", spy)
    monkeypatch.setattr(ingest_module, "profiles_lock", spy)
    result = run(
        tenant_a,
        event(
            tenant_a,
            "scl.member.updated",
            {"sclMemberId": "SCL9"},
            {"membershipType": "Full"},
            timestamp=at(5),
        ),
        event(
            tenant_a,
            "scl.member.updated",
            {"sclMemberId": "SCL10"},
            {"membershipType": "Junior"},
            timestamp=at(2),
        ),
    )
    assert len(result.entry_ids) == 2
    assert calls == [({member.pk}, True)]
    member.refresh_from_db()
    assert member.membership_type == "Senior"  # the older update did not overwrite it
    newcomer = CustomerProfile.objects.get(tenant=tenant_a, scl_member_id="SCL10")
    assert newcomer.membership_type == "Junior"


def test_handicap_follows_the_newest_event(tenant_a):
    player = person(tenant_a, teetime_player_id="TT1")
    newer, older = at(1), at(3)
    run(
        tenant_a,
        event(
            tenant_a,
            "teetime.handicap.updated",
            {"teetimePlayerId": "TT1"},
            {"handicapIndex": 12.4},
            timestamp=newer,
        ),
        event(
            tenant_a,
            "teetime.handicap.updated",
            {"teetimePlayerId": "TT1"},
            {"handicapIndex": "14.0"},
            timestamp=older,
        ),
    )
    player.refresh_from_db()
    assert player.handicap_index == Decimal("12.4")
    assert player.handicap_updated_at == ts(newer)
    # A later batch with an even older event changes nothing.
    run(
        tenant_a,
        event(
            tenant_a,
            "teetime.handicap.updated",
            {"teetimePlayerId": "TT1"},
            {"handicapIndex": 20},
            timestamp=at(10),
        ),
    )
    player.refresh_from_db()
    assert player.handicap_index == Decimal("12.4")


def test_payments_add_to_lifetime_value_in_the_tenants_currency(tenant_a):
    payer = person(tenant_a, email="payer@example.com")
    run(
        tenant_a,
        event(
            tenant_a,
            "teetime.booking.paid",
            {"email": "payer@example.com"},
            {"bookingId": "B1", "amount": "350.00", "currency": "ZAR"},
        ),
        event(
            tenant_a,
            "teetime.booking.paid",
            {"email": "payer@example.com"},
            {"bookingId": "B2", "amount": 99.5, "currency": "ZAR"},
        ),
        event(
            tenant_a,
            "teetime.booking.paid",
            {"email": "payer@example.com"},
            {"bookingId": "B3", "amount": "20.00", "currency": "GBP"},
        ),
    )
    payer.refresh_from_db()
    assert payer.lifetime_value_minor == 35_000 + 9_950
    titles = set(Activity.objects.filter(customer=payer).values_list("title", flat=True))
    assert "Paid ZAR 350.00 for a booking" in titles
    assert "Paid GBP 20.00 for a booking" in titles  # on the timeline, not in the sum
    assert set(Activity.objects.filter(customer=payer).values_list("source_id", flat=True)) == {
        "B1",
        "B2",
        "B3",
    }


def test_consent_opt_in_and_opt_out_are_stamped_with_time_and_source(tenant_a):
    fan = person(tenant_a, email="fan@example.com")
    when = at(hours_ago=2)
    run(
        tenant_a,
        event(
            tenant_a,
            "contactPreference.updated",
            {"email": "fan@example.com"},
            {"emailOptIn": True, "smsOptIn": False, "source": "preference_centre"},
            timestamp=when,
        ),
    )
    fan.refresh_from_db()
    assert fan.email_opt_in is True and fan.sms_opt_in is False
    assert fan.email_consent_at == ts(when) and fan.sms_consent_at == ts(when)
    assert fan.email_consent_source == fan.sms_consent_source == "preference_centre"
    assert fan.push_consent_at is None  # untouched channel
    later = at(hours_ago=1)
    run(
        tenant_a,
        event(
            tenant_a,
            "contactPreference.updated",
            {"email": "fan@example.com"},
            {"emailOptIn": False},
            timestamp=later,
        ),
    )
    fan.refresh_from_db()
    assert fan.email_opt_in is False
    assert fan.email_consent_at == ts(later)
    assert fan.email_consent_source == "messaging"


def test_an_older_consent_event_does_not_overwrite_a_newer_decision(tenant_a):
    fan = person(tenant_a, email="late@example.com")
    run(
        tenant_a,
        event(
            tenant_a,
            "contactPreference.updated",
            {"email": "late@example.com"},
            {"emailOptIn": False},
            timestamp=at(1),
        ),
    )
    run(
        tenant_a,
        event(
            tenant_a,
            "contactPreference.updated",
            {"email": "late@example.com"},
            {"emailOptIn": True},
            timestamp=at(3),
        ),
    )
    fan.refresh_from_db()
    assert fan.email_opt_in is False
    # Out of order inside one batch too.
    run(
        tenant_a,
        event(
            tenant_a,
            "contactPreference.updated",
            {"email": "late@example.com"},
            {"smsOptIn": True},
            timestamp=at(hours_ago=1),
        ),
        event(
            tenant_a,
            "contactPreference.updated",
            {"email": "late@example.com"},
            {"smsOptIn": False},
            timestamp=at(hours_ago=5),
        ),
    )
    fan.refresh_from_db()
    assert fan.sms_opt_in is True


def test_at_the_same_time_opt_out_wins(tenant_a):
    fan = person(tenant_a, email="tie@example.com")
    same = at(hours_ago=3)
    run(
        tenant_a,
        event(
            tenant_a,
            "contactPreference.updated",
            {"email": "tie@example.com"},
            {"emailOptIn": False},
            timestamp=same,
        ),
    )
    run(
        tenant_a,
        event(
            tenant_a,
            "contactPreference.updated",
            {"email": "tie@example.com"},
            {"emailOptIn": True},
            timestamp=same,
        ),
    )
    fan.refresh_from_db()
    assert fan.email_opt_in is False


def test_last_activity_only_moves_forward_and_the_30_day_count_is_rolling(tenant_a):
    golfer = person(tenant_a, email="golfer@example.com")
    recent = at(2)
    run(
        tenant_a,
        event(
            tenant_a,
            "teetime.round.completed",
            {"email": "golfer@example.com"},
            {"roundId": "R1", "stablefordPoints": 36, "course": "Links A"},
            timestamp=recent,
        ),
        event(
            tenant_a,
            "teetime.booking.created",
            {"email": "golfer@example.com"},
            {"bookingId": "B9", "teeTime": at(-3)},
            timestamp=at(40),
        ),
    )
    golfer.refresh_from_db()
    assert golfer.last_activity_at == ts(recent)
    assert golfer.last_activity_type == "teetime.round.completed"
    assert golfer.activity_count_30d == 1  # the 40-day-old booking is outside the window
    # An older event arriving later does not move the last activity back.
    run(
        tenant_a,
        event(
            tenant_a,
            "teetime.competition.entered",
            {"email": "golfer@example.com"},
            {"competitionId": "C1", "name": "Club Champs"},
            timestamp=at(5),
        ),
    )
    golfer.refresh_from_db()
    assert golfer.last_activity_at == ts(recent)
    assert golfer.activity_count_30d == 2
    assert Activity.objects.get(customer=golfer, type="teetime.round.completed").title == (
        "Played 18 holes at Links A, 36 points"
    )


def test_nightly_recount_lets_aged_activities_drop_out(tenant_a):
    golfer = person(tenant_a, email="aging@example.com")
    run(
        tenant_a,
        event(
            tenant_a,
            "teetime.round.completed",
            {"email": "aging@example.com"},
            {"roundId": "R2"},
            timestamp=at(29),
        ),
    )
    golfer.refresh_from_db()
    assert golfer.activity_count_30d == 1
    Activity.objects.filter(customer=golfer).update(occurred_at=timezone.now() - timedelta(31))
    bystander = person(tenant_a, email="quiet@example.com")
    assert activity_count_recompute(tenant=tenant_a, now=timezone.now()) == 1
    golfer.refresh_from_db()
    bystander.refresh_from_db()
    assert (golfer.activity_count_30d, bystander.activity_count_30d) == (0, 0)


def test_notes_and_delivery_receipts_are_not_engagement_and_batch_equals_nightly(tenant_a):
    golfer = person(tenant_a, email="engaged@example.com")
    booking = at(1)
    run(
        tenant_a,
        event(
            tenant_a,
            "teetime.round.completed",
            {"email": "engaged@example.com"},
            {"roundId": "R7"},
            timestamp=at(3),
        ),
    )
    note_create(
        tenant=tenant_a, customer=golfer, author=Author("user:1", "anna"), body="Called him."
    )
    campaign = Campaign.objects.create(tenant=tenant_a, name="News", channels=["email"])
    sent = Message.objects.create(
        tenant=tenant_a,
        run=CampaignRun.objects.create(
            tenant=tenant_a, campaign=campaign, scheduled_for=timezone.now()
        ),
        campaign=campaign,
        customer=golfer,
        channel="email",
        status=MessageStatus.SENT,
        sent_at=timezone.now(),
    )
    for kind in ("DELIVERED", "BOUNCED"):
        interaction_record(
            message=sent,
            kind=kind,
            source="messaging",
            event_id=f"evt-{kind}",
            occurred_at=timezone.now(),
            metadata={"bounce": "soft"},
        )
    golfer.refresh_from_db()
    assert Activity.objects.filter(customer=golfer).count() == 4  # all on the timeline
    assert golfer.last_activity_type == "teetime.round.completed"
    assert golfer.activity_count_30d == 1
    assert activity_count_recompute(tenant=tenant_a, now=timezone.now()) == 0

    # A later batch recounts the person: still only what they did.
    run(
        tenant_a,
        event(
            tenant_a,
            "teetime.booking.created",
            {"email": "engaged@example.com"},
            {"bookingId": "B7", "teeTime": at(-2)},
            timestamp=booking,
        ),
    )
    golfer.refresh_from_db()
    assert (golfer.last_activity_type, golfer.activity_count_30d) == (
        "teetime.booking.created",
        2,
    )
    assert activity_count_recompute(tenant=tenant_a, now=timezone.now()) == 0

    # Opening the message is engagement.
    interaction_record(
        message=sent,
        kind="OPENED",
        source="messaging",
        event_id="evt-open",
        occurred_at=timezone.now(),
    )
    golfer.refresh_from_db()
    assert (golfer.last_activity_type, golfer.activity_count_30d) == ("email.opened", 3)
    assert activity_count_recompute(tenant=tenant_a, now=timezone.now()) == 0
    golfer.refresh_from_db()
    assert golfer.activity_count_30d == 3


def test_unknown_type_is_kept_as_a_generic_activity(tenant_a):
    run(
        tenant_a,
        event(
            tenant_a,
            "pos.purchase.completed",
            {"email": "shop@example.com"},
            {"sku": "BALLS-12", "total": 499},
        ),
    )
    entry = SyncLogEntry.objects.get(tenant=tenant_a, type="pos.purchase.completed")
    assert (entry.status, entry.source) == (SyncStatus.PROCESSED, "pos")
    activity = Activity.objects.get(tenant=tenant_a, type="pos.purchase.completed")
    assert activity.category == "system"
    assert activity.metadata == {"sku": "BALLS-12", "total": 499}


def test_auth_registration_links_the_account_to_the_known_person(tenant_a):
    known = person(tenant_a, email="member@example.com")
    run(
        tenant_a,
        event(
            tenant_a,
            "auth.user.registered",
            {"authUserId": "au-77", "email": "member@example.com"},
            {},
        ),
    )
    known.refresh_from_db()
    assert known.auth_user_id == "au-77"
    assert CustomerProfile.objects.filter(tenant=tenant_a).count() == 1


def test_new_people_in_one_batch_are_created_once_each(tenant_a):
    person(tenant_a, email="known@example.com")
    run(
        tenant_a,
        event(
            tenant_a,
            "teetime.booking.created",
            {"email": "new@example.com"},
            {"bookingId": "N1", "teeTime": at(-1)},
        ),
        event(
            tenant_a,
            "teetime.booking.paid",
            {"email": "new@example.com", "phoneNumber": "082 555 0101"},
            {"bookingId": "N1", "amount": "100", "currency": "ZAR"},
        ),
        event(
            tenant_a, "teetime.round.completed", {"phoneNumber": "+27825550101"}, {"roundId": "N1R"}
        ),
        event(
            tenant_a, "teetime.round.completed", {"email": "known@example.com"}, {"roundId": "K1R"}
        ),
        event(
            tenant_a, "teetime.round.completed", {"email": "other@example.com"}, {"roundId": "O1R"}
        ),
    )
    assert CustomerProfile.objects.filter(tenant=tenant_a).count() == 3
    newcomer = profile_of(tenant_a, email="new@example.com")
    assert newcomer.phone == "+27825550101"
    assert newcomer.lifetime_value_minor == 10_000
    assert newcomer.currency == "ZAR"
    assert Activity.objects.filter(customer=newcomer).count() == 3
    entries = SyncLogEntry.objects.filter(tenant=tenant_a)
    assert {e.status for e in entries} == {SyncStatus.PROCESSED}
    assert all(e.profile_id for e in entries)


def test_a_person_created_by_an_event_has_the_defaults_of_one_created_by_hand(tenant_a):
    """The batch writes new people's rows itself (COPY, from the model's defaults): every
    column but the ids, times and what the event says is what the model gives."""
    run(
        tenant_a,
        event(
            tenant_a,
            "teetime.round.completed",
            {"email": "fresh@example.com", "teetimePlayerId": "TT-77"},
            {"roundId": "F1"},
        ),
    )
    created = profile_of(tenant_a, email="fresh@example.com")
    by_hand = CustomerProfile.objects.create(
        tenant=tenant_a,
        currency=tenant_a.currency,
        email="fresh@example.com",
        teetime_player_id="TT-77",
        external_ids={},
    )
    by_hand.refresh_from_db()
    moved_by_the_event = {"last_activity_at", "last_activity_type", "activity_count_30d"}
    differ = {
        f.attname
        for f in CustomerProfile._meta.concrete_fields
        if getattr(created, f.attname) != getattr(by_hand, f.attname)
    }
    assert differ == {"id", "created_at", "updated_at", *moved_by_the_event}
    assert created.tags == [] and created.status == "ACTIVE" and created.currency == "ZAR"


def test_a_new_identifier_for_a_known_person_is_attached(tenant_a):
    known = person(tenant_a, email="links@example.com")
    run(
        tenant_a,
        event(
            tenant_a,
            "teetime.round.completed",
            {"email": "links@example.com", "teetimePlayerId": "TT-9"},
            {"roundId": "R-9"},
        ),
    )
    known.refresh_from_db()
    assert known.teetime_player_id == "TT-9"
    assert CustomerProfile.objects.filter(tenant=tenant_a).count() == 1


def test_hints_pointing_at_two_people_record_a_merge_suggestion(tenant_a):
    from customers.models import MergeSuggestion

    person(tenant_a, email="one@example.com")
    person(tenant_a, phone="+27825550199")
    run(
        tenant_a,
        event(
            tenant_a,
            "teetime.round.completed",
            {"email": "one@example.com", "phoneNumber": "+27825550199"},
            {"roundId": "R-2p"},
        ),
    )
    assert MergeSuggestion.objects.filter(tenant=tenant_a).count() == 1
    assert CustomerProfile.objects.filter(tenant=tenant_a).count() == 2


def test_a_competition_published_goes_to_subscribers_without_a_person(
    tenant_a, django_capture_on_commit_callbacks
):
    received = []
    register_event_subscriber("test", lambda *, tenant, events: received.extend(events))
    try:
        with django_capture_on_commit_callbacks(execute=True):
            run(
                tenant_a,
                event(
                    tenant_a,
                    "teetime.competition.published",
                    None,
                    {"competitionId": "C9", "name": "Summer Open", "startsAt": at(-14)},
                ),
                event(
                    tenant_a,
                    "teetime.round.completed",
                    {"email": "sub@example.com"},
                    {"roundId": "S1"},
                ),
            )
    finally:
        unregister_event_subscriber("test")
    assert not Activity.objects.filter(tenant=tenant_a, type__startswith="teetime.competition")
    by_type = {e.type: e for e in received}
    assert by_type["teetime.competition.published"].profile_id is None
    assert by_type["teetime.competition.published"].payload["name"] == "Summer Open"
    round_event = by_type["teetime.round.completed"]
    assert round_event.is_new_profile is True
    assert round_event.profile_id == profile_of(tenant_a, email="sub@example.com").pk


def test_a_failing_subscriber_does_not_undo_processing(
    tenant_a, django_capture_on_commit_callbacks
):
    def broken(*, tenant, events):
        raise RuntimeError("subscriber bug")

    register_event_subscriber("broken", broken)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            run(
                tenant_a,
                event(
                    tenant_a,
                    "teetime.round.completed",
                    {"email": "s@example.com"},
                    {"roundId": "S2"},
                ),
            )
    finally:
        unregister_event_subscriber("broken")
    assert SyncLogEntry.objects.get(tenant=tenant_a).status == SyncStatus.PROCESSED


def test_replaying_a_batch_creates_nothing_twice(tenant_a):
    events = [
        event(
            tenant_a,
            "teetime.booking.paid",
            {"email": "twice@example.com"},
            {"bookingId": f"T{i}", "amount": "10", "currency": "ZAR"},
        )
        for i in range(5)
    ]
    first = ingest(tenant_a, *events)
    process_pending(tenant_a)
    # The same rows handed to the processor again (a redelivered task) ...
    from customers.ingest import events_process

    again = events_process(tenant=tenant_a, entry_ids=first.entry_ids)
    assert (again.processed, again.skipped) == (0, 5)
    # ... and the same events sent again (a producer retry).
    second = ingest(tenant_a, *events)
    assert second.accepted == [] and len(second.duplicates) == 5
    process_pending(tenant_a)
    payer = profile_of(tenant_a, email="twice@example.com")
    assert Activity.objects.filter(customer=payer).count() == 5
    assert payer.lifetime_value_minor == 5_000
    assert SyncLogEntry.objects.filter(tenant=tenant_a).count() == 5


def test_events_of_two_tenants_never_mix(tenant_a, tenant_b):
    run(
        tenant_a,
        event(
            tenant_a,
            "teetime.round.completed",
            {"email": "same@example.com"},
            {"roundId": "R"},
            id="shared-id",
        ),
    )
    run(
        tenant_b,
        event(
            tenant_b,
            "teetime.round.completed",
            {"email": "same@example.com"},
            {"roundId": "R"},
            id="shared-id",
        ),
    )
    a = profile_of(tenant_a, email="same@example.com")
    b = profile_of(tenant_b, email="same@example.com")
    assert a.pk != b.pk
    assert Activity.objects.filter(customer=a).count() == 1
    assert Activity.objects.filter(customer=b).count() == 1


def test_a_person_created_concurrently_by_another_batch_is_not_created_twice(tenant_a, monkeypatch):
    """Between this batch's alias look-up and its inserts, another transaction created the
    person: the group is undone and resolved to that person; the others are still created."""
    from customers import ingest

    elsewhere = person(tenant_a, email="race@example.com")
    monkeypatch.setattr(ingest, "_known_aliases", lambda tenant, pairs: {})
    run(
        tenant_a,
        event(
            tenant_a,
            "teetime.round.completed",
            {"email": "race@example.com", "phoneNumber": "+27825550777"},
            {"roundId": "X1"},
        ),
        event(
            tenant_a, "teetime.round.completed", {"email": "fresh@example.com"}, {"roundId": "X2"}
        ),
    )
    assert CustomerProfile.objects.filter(tenant=tenant_a).count() == 2
    elsewhere.refresh_from_db()
    assert elsewhere.phone == "+27825550777"
    assert Activity.objects.get(source_event_id__isnull=False, source_id="X1").customer_id == (
        elsewhere.pk
    )
    fresh = profile_of(tenant_a, email="fresh@example.com")
    assert Activity.objects.get(source_id="X2").customer_id == fresh.pk
    assert not IdentityAlias.objects.filter(profile__isnull=True).exists()
    assert IdentityAlias.objects.filter(tenant=tenant_a).count() == 3


def test_the_recount_after_a_bulk_load_on_stale_statistics_counts_once(tenant_a, tenant_b):
    """An import loads thousands of profiles and activities, then recounts in the same
    transaction, on statistics taken before (only another tenant's rows): the counts are
    computed once and joined, not once per profile (inlined, the aggregate ran once per
    profile: 14 s at 58,789 imported profiles)."""
    now = timezone.now()
    person(tenant_b, email="other@example.com")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE customers_customerprofile")
        cursor.execute("ANALYZE customers_activity")
    profiles = CustomerProfile.objects.bulk_create(
        [CustomerProfile(tenant=tenant_a, first_name=f"P{i}") for i in range(20_000)],
        batch_size=5000,
    )
    Activity.objects.bulk_create(
        [
            Activity(
                tenant=tenant_a,
                customer=profiles[i % 100],
                type="teetime.round.completed",
                category="golf",
                title="Round",
                source_service="test",
                source_event_id=f"r{i}",
                occurred_at=now - timedelta(days=1),
            )
            for i in range(3000)
        ],
        batch_size=5000,
    )
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = '5s'")
        assert activity_count_recompute(tenant=tenant_a, now=now) == 100
        cursor.execute("SET LOCAL statement_timeout = 0")
    assert CustomerProfile.objects.get(pk=profiles[7].pk).activity_count_30d == 30
