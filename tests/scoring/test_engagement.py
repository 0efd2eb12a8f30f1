"""The engagement score (guide §10.1): each bucket edge of each component, against totals
computed by hand, through the set-wise SQL that writes the profile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from customers.models import CustomerProfile
from customers.timeline import NOTE_ACTIVITY
from scoring.engagement import band_for
from scoring.models import ScoringSettings
from scoring.scores import scores_write

from .helpers import activity, engaged, profile, run_of, sent

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 24, 6, 30, tzinfo=UTC)


def scored(tenant, engagements: int = 0, **fields) -> int | None:
    customer = profile(tenant, **fields)
    engaged(tenant, customer, engagements, NOW - DAY)
    scores_write(tenant=tenant, now=NOW)
    customer.refresh_from_db()
    return customer.engagement_score


# Everything else zero and no message sent (depth 50): total = round(0.30 r + 5).
@pytest.mark.parametrize(
    ("ago", "total"),
    [
        (timedelta(0), 35),
        (timedelta(days=7, hours=23), 35),  # 7 whole days: still 100
        (timedelta(days=8), 29),  # 80
        (timedelta(days=14, hours=23), 29),
        (timedelta(days=15), 23),  # 60
        (timedelta(days=30, hours=23), 23),
        (timedelta(days=31), 17),  # 40
        (timedelta(days=60, hours=23), 17),
        (timedelta(days=61), 11),  # 20
        (timedelta(days=90, hours=23), 11),
        (timedelta(days=91), 5),  # 0
        (None, 5),  # never active: 0
    ],
)
def test_recency_buckets(tenant_a, ago, total):
    last = None if ago is None else NOW - ago
    assert scored(tenant_a, last_activity_at=last) == total


# total = round(0.25 f + 5)
@pytest.mark.parametrize(
    ("count", "total"),
    [(0, 5), (1, 10), (2, 15), (4, 15), (5, 20), (9, 20), (10, 25), (19, 25), (20, 30), (75, 30)],
)
def test_frequency_buckets(tenant_a, count, total):
    assert scored(tenant_a, engagements=count) == total


# ZAR, default thresholds in rand: total = round(0.20 m + 5); values in cents.
@pytest.mark.parametrize(
    ("cents", "total"),
    [
        (0, 5),
        (499_999, 5),
        (500_000, 9),  # R5 000: 20
        (999_999, 9),
        (1_000_000, 13),  # R10 000: 40
        (1_999_999, 13),
        (2_000_000, 17),  # R20 000: 60
        (4_999_999, 17),
        (5_000_000, 21),  # R50 000: 80
        (9_999_999, 21),
        (10_000_000, 25),  # R100 000: 100
    ],
)
def test_monetary_buckets_in_major_units(tenant_a, cents, total):
    assert scored(tenant_a, lifetime_value_minor=cents) == total


def test_monetary_thresholds_are_per_tenant(tenant_a, tenant_b):
    ScoringSettings.objects.create(
        tenant=tenant_b, monetary_thresholds=[5000, 2500, 1000, 500, 250]
    )
    a = profile(tenant_a, lifetime_value_minor=100_000)  # R1 000: below R5 000
    b = profile(tenant_b, lifetime_value_minor=100_000)  # £1 000: at the 60-point threshold
    scores_write(tenant=tenant_a, now=NOW)
    scores_write(tenant=tenant_b, now=NOW)
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.engagement_score, b.engagement_score) == (5, 17)


# total = round(0.15 * 25 * channels + 5): 12.5 rounds up.
@pytest.mark.parametrize(
    ("channels", "total"),
    [
        ((), 5),
        (("email",), 9),
        (("email", "sms"), 13),
        (("sms", "push", "whatsapp"), 16),
        (("email", "sms", "push", "whatsapp"), 20),
    ],
)
def test_breadth_counts_channels_opted_in(tenant_a, channels, total):
    assert scored(tenant_a, **{f"{c}_opt_in": True for c in channels}) == total


def _depth_total(tenant, messages) -> int | None:
    customer = profile(tenant)
    run = run_of(tenant, NOW)
    for spec in messages:
        sent(
            tenant,
            customer,
            run=run_of(tenant, NOW) if spec.get("new_run") else run,
            **{k: v for k, v in spec.items() if k != "new_run"},
        )
    scores_write(tenant=tenant, now=NOW)
    customer.refresh_from_db()
    return customer.engagement_score


DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("messages", "total"),
    [
        # Depth alone: total = round(0.10 d).
        ([], 5),  # no sends: 50
        ([{"at": NOW - DAY}], 0),  # sent, never opened: 0
        ([{"at": NOW - DAY, "opens": 3}], 5),  # opened (three opens count once): 50
        ([{"at": NOW - DAY, "opens": 2, "clicks": 4}], 10),  # 50 + 50
        ([{"at": NOW - DAY, "clicks": 1}], 10),  # a click is an open too: 100
        # 4 sent, 1 opened, none clicked: depth 12.5 -> 13, total 1.3 -> 1
        ([{"at": NOW - DAY, "opens": 1}] + [{"at": NOW - DAY, "new_run": True}] * 3, 1),
        # 2 sent, 1 opened and clicked: 25 + 50 = 75, total 7.5 -> 8
        ([{"at": NOW - DAY, "opens": 1, "clicks": 1}, {"at": NOW - DAY, "new_run": True}], 8),
        # Sent 31 days ago, or failed: not in the window, so no sends
        ([{"at": NOW - timedelta(days=30, seconds=1), "opens": 1}], 5),
        ([{"at": NOW - DAY, "status": "FAILED"}], 5),
        # Sent exactly 30 days ago: still out (the window is (now - 30 days, now])
        ([{"at": NOW - timedelta(days=30)}], 5),
        # An open recorded after ``now`` is not known yet: sent, not opened
        ([{"at": NOW - DAY, "opens": 1, "interactions_at": NOW + DAY}], 0),
    ],
)
def test_depth_from_the_last_30_days_of_messages(tenant_a, messages, total):
    assert _depth_total(tenant_a, messages) == total


def test_all_components_together(tenant_a):
    customer = profile(
        tenant_a,
        last_activity_at=NOW - timedelta(days=10),  # 80
        lifetime_value_minor=2_500_000,  # R25 000: 60
        email_opt_in=True,
        sms_opt_in=True,  # 50
    )
    engaged(tenant_a, customer, 6, NOW - DAY)  # 60
    run = run_of(tenant_a, NOW)
    sent(tenant_a, customer, run=run, at=NOW - DAY, opens=1, clicks=1)
    sent(tenant_a, customer, run=run_of(tenant_a, NOW), at=NOW - DAY, opens=1)
    sent(tenant_a, customer, run=run_of(tenant_a, NOW), at=NOW - DAY)
    # depth: 50 * 2/3 + 50 * 1/2 = 58.33 -> 58
    # 0.3*80 + 0.25*60 + 0.2*60 + 0.15*50 + 0.1*58 = 24 + 15 + 12 + 7.5 + 5.8 = 64.3 -> 64
    assert scores_write(tenant=tenant_a, now=NOW).scored == 1
    customer.refresh_from_db()
    assert customer.engagement_score == 64
    assert customer.engagement_scored_at == NOW
    assert band_for(customer.engagement_score) == "medium"


def test_bands():
    assert [band_for(s) for s in (0, 39, 40, 69, 70, 100)] == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
    ]


def test_merged_erased_and_deleted_profiles_are_never_scored(tenant_a):
    live = profile(tenant_a)
    engaged(tenant_a, live, 20, NOW - DAY)
    merged = profile(tenant_a, status="MERGED", activity_count_30d=20)
    erased = profile(tenant_a, status="ERASED", activity_count_30d=20)
    deleted = profile(tenant_a, deleted_at=NOW, activity_count_30d=20)
    inactive = profile(tenant_a, status="INACTIVE")
    assert scores_write(tenant=tenant_a, now=NOW).scored == 2
    scores = dict(
        CustomerProfile.objects.filter(
            pk__in=[p.pk for p in (live, merged, erased, deleted, inactive)]
        ).values_list("pk", "engagement_score")
    )
    assert scores == {
        live.pk: 30,
        merged.pk: None,
        erased.pk: None,
        deleted.pk: None,
        inactive.pk: 5,
    }


def test_scoring_a_tenant_never_touches_or_reads_another(tenant_a, tenant_b):
    mine = profile(tenant_a)
    theirs = profile(tenant_b, activity_count_30d=20)
    # A message of tenant B to... tenant B's person does not change tenant A's depth.
    sent(tenant_b, theirs, run=run_of(tenant_b, NOW), at=NOW - DAY)
    scores_write(tenant=tenant_a, now=NOW)
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.engagement_score, theirs.engagement_score) == (5, None)


def test_the_run_recounts_engagement_of_the_last_30_days_only(tenant_a):
    customer = profile(tenant_a, activity_count_30d=25)  # stale
    activity(tenant_a, customer, "teetime.booking.created", NOW - DAY)
    activity(tenant_a, customer, "teetime.round.completed", NOW - 31 * DAY)  # too old
    activity(tenant_a, customer, "teetime.booking.paid", NOW + DAY)  # after the run's clock
    for receipt_or_note in (NOTE_ACTIVITY, "email.delivered", "sms.bounced"):
        activity(tenant_a, customer, receipt_or_note, NOW - DAY)
    scores_write(tenant=tenant_a, now=NOW)
    customer.refresh_from_db()
    # One engagement in the window: frequency 20 -> round(0.25 * 20 + 5) = 10.
    assert (customer.activity_count_30d, customer.engagement_score) == (1, 10)
