"""Property: on random profiles and messages, the set-wise SQL gives every profile exactly
the score of the plain Python implementation of §10.1 (``engagement_reference``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customers.models import CHANNELS
from scoring.engagement import (
    EngagementInputs,
    engagement_reference,
    engagement_scores,
    monetary_thresholds_minor,
)

from .helpers import profile, run_of, sent

NOW = datetime(2026, 11, 24, 6, 30, tzinfo=UTC)
# Around every recency edge (whole days, a second either side).
MOMENTS = [None] + [
    NOW - timedelta(days=d, seconds=s)
    for d in (0, 7, 8, 14, 15, 30, 31, 60, 61, 90, 91, 400)
    for s in (-1, 0, 1)
]
COUNTS = [0, 1, 2, 4, 5, 9, 10, 19, 20, 31]
MONEY = [0, 499_999, 500_000, 1_000_000, 1_999_999, 2_000_000, 5_000_000, 10_000_000, 10**9]


def message_values():
    return st.fixed_dictionaries(
        {
            "days_ago": st.sampled_from([0.5, 1, 29.9, 30, 31]),
            "opens": st.integers(0, 2),
            "clicks": st.integers(0, 2),
            "status": st.sampled_from(["SENT", "SENT", "FAILED"]),
        }
    )


def profile_values():
    return st.fixed_dictionaries(
        {
            "last_activity_at": st.sampled_from(MOMENTS),
            "activity_count_30d": st.sampled_from(COUNTS),
            "lifetime_value_minor": st.sampled_from(MONEY),
            **{f"{c}_opt_in": st.booleans() for c in CHANNELS},
            "messages": st.lists(message_values(), max_size=5),
        }
    )


def _inputs(values) -> EngagementInputs:
    window = [m for m in values["messages"] if m["status"] == "SENT" and m["days_ago"] < 30]
    return EngagementInputs(
        last_activity_at=values["last_activity_at"],
        activity_count_30d=values["activity_count_30d"],
        lifetime_value_minor=values["lifetime_value_minor"],
        channels_opted_in=sum(values[f"{c}_opt_in"] for c in CHANNELS),
        sent=len(window),
        opened=sum(1 for m in window if m["opens"] or m["clicks"]),
        clicked=sum(1 for m in window if m["clicks"]),
    )


@pytest.mark.django_db
@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(profiles=st.lists(profile_values(), min_size=1, max_size=6))
def test_sql_equals_the_python_reference(tenant_a, profiles):
    thresholds = monetary_thresholds_minor(tenant=tenant_a)
    with transaction.atomic():
        expected = {}
        for values in profiles:
            fields = {k: v for k, v in values.items() if k != "messages"}
            customer = profile(tenant_a, **fields)
            for m in values["messages"]:
                # Each message its own run: one message per run, customer and channel.
                sent(
                    tenant_a,
                    customer,
                    run=run_of(tenant_a, NOW),
                    at=NOW - timedelta(days=m["days_ago"]),
                    opens=m["opens"],
                    clicks=m["clicks"],
                    status=m["status"],
                    interactions_at=NOW - timedelta(hours=1),
                )
            expected[customer.pk] = engagement_reference(
                _inputs(values), now=NOW, thresholds_minor=thresholds
            )
        actual = engagement_scores(tenant=tenant_a, now=NOW)
        transaction.set_rollback(True)
    assert actual == expected
