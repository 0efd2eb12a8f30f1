"""The backtest: AUC and lift by hand, who is in the population and who churned, and on
the synthetic demo history the score ranks churners well above chance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from customers.models import CustomerProfile
from scoring.backtest import auc, backtest_run, top_decile_lift
from scoring.demo import demo_history_generate
from scoring.models import Backtest

from .helpers import activity, profile

NOW = datetime(2026, 11, 24, 6, 30, tzinfo=UTC)
AS_OF = NOW - timedelta(days=120)
DAY = timedelta(days=1)


def test_auc_by_hand():
    assert auc([(10, True), (5, False)]) == 1.0
    assert auc([(5, True), (10, False)]) == 0.0
    assert auc([(5, True), (5, False)]) == 0.5  # a tie counts half
    # churners 30, 10; stayers 20, 0: pairs won 30>20, 30>0, 10>0; lost 10<20 -> 3/4
    assert auc([(30, True), (10, True), (20, False), (0, False)]) == 0.75
    assert auc([(1, True)]) is None


def test_top_decile_lift_by_hand():
    rows = [(f"{i:02}", 100 - i, i in (0, 15)) for i in range(20)]  # 2 of 20 churn
    lift, hits = top_decile_lift(rows)  # top 2: ids 00, 01; one churner: 50% vs 10%
    assert (lift, hits) == (5.0, 1)


@pytest.mark.django_db
def test_population_and_labels(tenant_a):
    stayer = profile(tenant_a, lifecycle_stage="MEMBER", membership_status="ACTIVE")
    lapsed_in_window = profile(
        tenant_a,
        lifecycle_stage="LAPSED",
        membership_status="LAPSED",
        membership_updated_at=AS_OF + 30 * DAY,
    )
    lapsed_before = profile(
        tenant_a,
        lifecycle_stage="LAPSED",
        membership_status="LAPSED",
        membership_updated_at=AS_OF - DAY,
    )
    lapsed_after_window = profile(
        tenant_a,
        lifecycle_stage="LAPSED",
        membership_status="LAPSED",
        membership_updated_at=AS_OF + 91 * DAY,
    )
    by_activity = profile(tenant_a, lifecycle_stage="MEMBER", membership_status="ACTIVE")
    activity(tenant_a, by_activity, "scl.member.lapsed", AS_OF + 10 * DAY)
    profile(tenant_a, lifecycle_stage="SUBSCRIBER")  # never a member: not in the population
    profile(tenant_a, lifecycle_stage="MEMBER", membership_joined_on=(AS_OF + DAY).date())
    result = backtest_run(tenant=tenant_a, as_of=AS_OF, now=NOW)
    # stayer, lapsed_in_window, lapsed_after_window, by_activity; lapsed_before was gone
    assert (result.population, result.churners) == (4, 2)
    assert lapsed_before.pk and stayer.pk and lapsed_in_window.pk and lapsed_after_window.pk


@pytest.mark.django_db
def test_the_outcome_must_be_known():
    with pytest.raises(CommandError, match="have not passed"):
        call_command("backtest", "--as-of", "2999-01-01T00:00Z")


@pytest.mark.django_db
def test_on_the_synthetic_history_risk_ranks_churners(tenant_a, tenant_b):
    for _ in range(400):
        profile(tenant_a, lifecycle_stage="MEMBER", membership_status="ACTIVE")
    profile(tenant_b, lifecycle_stage="MEMBER", membership_status="ACTIVE")
    rounds, lapses = demo_history_generate(tenant=tenant_a, members=400, seed=3, now=NOW)
    assert rounds > 400 * 20 and 30 < lapses < 100
    assert CustomerProfile.objects.for_tenant(tenant_b).get().membership_status == "ACTIVE"
    result = backtest_run(tenant=tenant_a, as_of=AS_OF, now=NOW)
    assert result.population > 350 and result.churners > 10
    # Well above chance (0.5 and 1.0); profile ids are random, so margins are wide.
    assert result.auc > 0.6
    assert result.top_decile_lift > 1.8
    assert Backtest.objects.for_tenant(tenant_b).count() == 0
