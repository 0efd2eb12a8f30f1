"""Churn risk: each reason code, its points and facts, the cap, as-of reads, the stored
rows and the profile columns the rule engine reads, tenant isolation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from customers.models import CustomerProfile
from marketing.models import Interaction
from scoring.churn import REASON_POINTS, churn_scores
from scoring.models import Score
from scoring.scores import ScoresWritten, scores_write

from .helpers import activity, engaged, profile, run_of, sent

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 24, 6, 30, tzinfo=UTC)
DAY = timedelta(days=1)
ROUND = "teetime.round.completed"


def rounds(tenant, customer, *days_ago):
    for d in days_ago:
        activity(tenant, customer, ROUND, NOW - d * DAY)


def reasons_of(tenant, customer, as_of=NOW):
    risk, reasons = churn_scores(tenant=tenant, as_of=as_of)[customer.pk]
    return risk, {r["code"]: r for r in reasons}


def test_nothing_known_is_no_risk(tenant_a):
    quiet = profile(tenant_a, lifecycle_stage="SUBSCRIBER")
    assert reasons_of(tenant_a, quiet) == (0, {})


def test_round_overdue_against_the_members_own_interval(tenant_a):
    weekly = profile(tenant_a)  # every 7 days, last 20 days ago: 20 >= 14 (2x) and < 28
    rounds(tenant_a, weekly, 20, 27, 34, 41)
    risk, reasons = reasons_of(tenant_a, weekly)
    assert reasons["ROUND_OVERDUE"] == {
        "code": "ROUND_OVERDUE",
        "points": 20,
        "days_since_round": 20,
        "usual_interval_days": 7,
    }
    assert risk == 20
    monthly = profile(tenant_a)  # every 30 days, last 20 days ago: on schedule
    rounds(tenant_a, monthly, 20, 50, 80)
    assert reasons_of(tenant_a, monthly) == (0, {})


def test_round_overdue_long_at_four_times_the_interval(tenant_a):
    weekly = profile(tenant_a)
    rounds(tenant_a, weekly, 28, 35, 42)  # 28 = 4 x 7
    risk, reasons = reasons_of(tenant_a, weekly)
    assert set(reasons) == {"ROUND_OVERDUE_LONG"}
    assert risk == 35
    edge = profile(tenant_a)
    rounds(tenant_a, edge, 27, 34, 41)  # one day short of 4x: the short code
    assert set(reasons_of(tenant_a, edge)[1]) == {"ROUND_OVERDUE"}


def test_rounds_declining_against_the_previous_90_days(tenant_a):
    halved = profile(tenant_a)
    rounds(tenant_a, halved, 1, 3, 100, 105, 110, 115)  # 2 now vs 4 before
    _, reasons = reasons_of(tenant_a, halved)
    assert reasons["ROUNDS_DECLINING"]["rounds_90"] == 2
    assert reasons["ROUNDS_DECLINING"]["rounds_prev_90"] == 4
    steady = profile(tenant_a)
    rounds(tenant_a, steady, 1, 3, 5, 100, 105, 110, 115)  # 3 vs 4: not halved
    assert "ROUNDS_DECLINING" not in reasons_of(tenant_a, steady)[1]


def test_member_without_rounds(tenant_a):
    member = profile(tenant_a, lifecycle_stage="MEMBER")
    subscriber = profile(tenant_a, lifecycle_stage="SUBSCRIBER")
    assert reasons_of(tenant_a, member)[0] == REASON_POINTS["NO_RECENT_ROUNDS"]
    assert reasons_of(tenant_a, subscriber)[0] == 0


def test_cancellations_unsubscribes_and_complaints_of_the_last_90_days(tenant_a):
    customer = profile(tenant_a)
    activity(tenant_a, customer, "teetime.booking.cancelled", NOW - 5 * DAY)
    activity(tenant_a, customer, "teetime.booking.cancelled", NOW - 89 * DAY)
    activity(tenant_a, customer, "teetime.booking.cancelled", NOW - 91 * DAY)  # too old
    message = sent(tenant_a, customer, run=run_of(tenant_a, NOW), at=NOW - 10 * DAY)
    for kind, n in (("UNSUBSCRIBED", 1), ("COMPLAINED", 2)):
        Interaction.objects.create(
            tenant=tenant_a,
            message=message,
            campaign=message.campaign,
            customer=customer,
            kind=kind,
            source="test",
            event_id=f"{kind}-{n}",
            occurred_at=NOW - 9 * DAY,
        )
    risk, reasons = reasons_of(tenant_a, customer)
    assert reasons["BOOKINGS_CANCELLED"]["cancelled_90"] == 2
    assert reasons["UNSUBSCRIBED"]["points"] == 10
    assert reasons["COMPLAINED"]["points"] == 15
    assert risk == 35
    # Ten days earlier the unsubscribe and complaint had not happened yet; the 90 days then
    # held the cancellations of 89 and 91 days before NOW, not the one of 5.
    risk, reasons = reasons_of(tenant_a, customer, as_of=NOW - 10 * DAY)
    assert (risk, set(reasons)) == (10, {"BOOKINGS_CANCELLED"})


def test_renewal_near_without_recent_activity(tenant_a):
    idle = profile(tenant_a, membership_renewal_on=date(2027, 1, 20))  # 57 days on
    busy = profile(tenant_a, membership_renewal_on=date(2027, 1, 20))
    activity(tenant_a, busy, "teetime.booking.created", NOW - 3 * DAY)
    later = profile(tenant_a, membership_renewal_on=date(2027, 1, 24))  # 61 days on
    assert reasons_of(tenant_a, idle)[1]["RENEWAL_NEAR_INACTIVE"]["renewal_on"] == "2027-01-20"
    assert "RENEWAL_NEAR_INACTIVE" not in reasons_of(tenant_a, busy)[1]
    assert "RENEWAL_NEAR_INACTIVE" not in reasons_of(tenant_a, later)[1]


def test_handicap_not_updated_for_180_days(tenant_a):
    stale = profile(tenant_a, handicap_updated_at=NOW - 181 * DAY)
    fresh = profile(tenant_a, handicap_updated_at=NOW - 179 * DAY)
    unknown = profile(tenant_a)
    assert "HANDICAP_STALE" in reasons_of(tenant_a, stale)[1]
    assert reasons_of(tenant_a, fresh)[1] == {}
    assert reasons_of(tenant_a, unknown)[1] == {}


def test_risk_is_capped_at_100_and_reasons_are_listed_highest_first(tenant_a):
    member = profile(
        tenant_a,
        lifecycle_stage="MEMBER",
        membership_renewal_on=date(2026, 12, 1),
        handicap_updated_at=NOW - 400 * DAY,
    )
    rounds(tenant_a, member, 100, 105, 110, 115, 120)  # overdue long and declining
    for d in (40, 50):
        activity(tenant_a, member, "teetime.booking.cancelled", NOW - d * DAY)
    message = sent(tenant_a, member, run=run_of(tenant_a, NOW), at=NOW - 40 * DAY)
    for kind in ("UNSUBSCRIBED", "COMPLAINED"):
        Interaction.objects.create(
            tenant=tenant_a,
            message=message,
            campaign=message.campaign,
            customer=member,
            kind=kind,
            source="test",
            event_id=kind,
            occurred_at=NOW - 39 * DAY,
        )
    risk, reasons = churn_scores(tenant=tenant_a, as_of=NOW)[member.pk]
    points = [r["points"] for r in reasons]
    assert risk == 100 and sum(points) > 100
    assert points == sorted(points, reverse=True)
    assert [r["code"] for r in reasons] == [
        "ROUND_OVERDUE_LONG",
        "ROUNDS_DECLINING",
        "RENEWAL_NEAR_INACTIVE",
        "COMPLAINED",
        "BOOKINGS_CANCELLED",
        "UNSUBSCRIBED",
        "HANDICAP_STALE",
    ]


def test_scoring_writes_score_rows_and_profiles_and_prunes_the_dead(tenant_a, tenant_b):
    member = profile(tenant_a, lifecycle_stage="MEMBER")
    engaged(tenant_a, member, 20, NOW - DAY)
    gone = profile(tenant_a, lifecycle_stage="MEMBER")
    other = profile(tenant_b, lifecycle_stage="MEMBER")
    assert scores_write(tenant=tenant_a, now=NOW) == ScoresWritten(
        scored=2, changed=2, profiles_changed=2, pruned=0
    )
    CustomerProfile.objects.filter(pk=gone.pk).update(status="MERGED")
    # The next night: the merged profile's row goes; the member's scores did not change,
    # so nothing of theirs is written.
    assert scores_write(tenant=tenant_a, now=NOW + DAY) == ScoresWritten(
        scored=1, changed=0, profiles_changed=0, pruned=1
    )
    rows = list(
        Score.objects.for_tenant(tenant_a).values(
            "customer_id", "engagement", "band", "churn_risk", "reasons", "computed_at"
        )
    )
    assert rows == [
        {
            "customer_id": member.pk,
            "engagement": 30,
            "band": "low",
            "churn_risk": 15,
            "reasons": [{"code": "NO_RECENT_ROUNDS", "points": 15, "rounds_365": 0}],
            "computed_at": NOW,
        }
    ]
    member.refresh_from_db()
    assert (member.churn_risk, member.churn_scored_at) == (15, NOW)
    other.refresh_from_db()
    assert other.churn_risk is None
    assert not Score.objects.for_tenant(tenant_b).exists()


def test_only_changed_scores_are_written_with_the_time_they_changed(tenant_a):
    member = profile(tenant_a, lifecycle_stage="MEMBER")
    engaged(tenant_a, member, 20, NOW - DAY)
    still = profile(tenant_a, lifecycle_stage="MEMBER")
    scores_write(tenant=tenant_a, now=NOW)
    # Engagement changes (R100 000 of lifetime value: +20 points), churn risk does not.
    CustomerProfile.objects.filter(pk=member.pk).update(lifetime_value_minor=10_000_000)
    assert scores_write(tenant=tenant_a, now=NOW + DAY) == ScoresWritten(
        scored=2, changed=1, profiles_changed=1, pruned=0
    )
    member.refresh_from_db()
    assert (member.engagement_score, member.engagement_scored_at) == (50, NOW + DAY)
    assert (member.churn_risk, member.churn_scored_at) == (15, NOW)
    assert Score.objects.get(customer=member).computed_at == NOW + DAY
    assert Score.objects.get(customer=still).computed_at == NOW
    # Two rounds in the last 90 days, none in the 90 before: NO_RECENT_ROUNDS no longer
    # applies, so churn risk changes and engagement does not.
    rounds(tenant_a, member, 3, 40)
    assert scores_write(tenant=tenant_a, now=NOW + 2 * DAY).profiles_changed == 1
    member.refresh_from_db()
    assert (member.engagement_score, member.engagement_scored_at) == (50, NOW + DAY)
    assert (member.churn_risk, member.churn_scored_at) == (0, NOW + 2 * DAY)
