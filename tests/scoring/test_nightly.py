"""The nightly run: 02:00 local per tenant, once per local day across UK DST changes, after
the activity recount; on demand from the command; routed to the scoring queue."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command

from crm.celery import route_task
from customers.models import CustomerProfile
from scoring.models import DailyStats, RunKind, Score, ScoringRun
from scoring.nightly import tenant_score, tenants_due

from .helpers import activity, profile

pytestmark = pytest.mark.django_db
LONDON = ZoneInfo("Europe/London")


def _tick_every_15_minutes(start: datetime, hours: int):
    for i in range(hours * 4):
        now = start + timedelta(minutes=15 * i)
        for tenant in tenants_due(now=now):
            tenant_score(tenant=tenant, kind=RunKind.NIGHTLY, now=now)
            # A second beat tick firing at the same moment changes nothing.
            assert tenant_score(tenant=tenant, kind=RunKind.NIGHTLY, now=now) is None


@pytest.mark.parametrize(
    "start",
    [
        datetime(2031, 3, 28, 0, 0, tzinfo=UTC),  # clocks go forward on Sunday 30 March
        datetime(2033, 10, 28, 0, 0, tzinfo=UTC),  # clocks go back on Sunday 30 October
        datetime(2026, 6, 10, 0, 0, tzinfo=UTC),
    ],
    ids=["spring-forward", "fall-back", "summer"],
)
def test_once_per_local_day_at_two_across_uk_dst(tenant_a, tenant_b, start):
    profile(tenant_b)
    _tick_every_15_minutes(start, hours=4 * 24)
    for tenant in (tenant_a, tenant_b):
        runs = list(ScoringRun.objects.for_tenant(tenant).order_by("started_at"))
        tz = ZoneInfo(tenant.timezone)
        assert Counter(r.local_date for r in runs) == {
            (start + timedelta(days=d)).date(): 1 for d in (0, 1, 2, 3)
        }
        for run in runs:
            local = run.started_at.astimezone(tz)
            assert (local.hour, local.minute) == (2, 0), run.started_at
            assert run.kind == "nightly" and run.finished_at is not None


def test_fall_back_runs_at_two_gmt_not_at_the_first_one_oclock(tenant_b):
    night = datetime(2033, 10, 30, 0, 0, tzinfo=UTC)  # 01:00 BST
    assert tenants_due(now=night) == []
    assert tenants_due(now=night + timedelta(hours=1)) == []  # 01:00 GMT, the second time
    assert tenants_due(now=night + timedelta(hours=2)) == [tenant_b]  # 02:00 GMT


def test_the_run_recounts_activity_first_then_scores(tenant_a):
    now = datetime(2026, 11, 24, 0, 30, tzinfo=UTC)  # 02:30 in Johannesburg
    golfer = profile(
        tenant_a,
        lifecycle_stage="MEMBER",
        activity_count_30d=25,
        last_activity_at=now - timedelta(days=1),
    )
    for d in (1, 2):
        activity(tenant_a, golfer, "teetime.round.completed", now - timedelta(days=d))
    run = tenant_score(tenant=tenant_a, kind=RunKind.NIGHTLY, now=now)
    golfer.refresh_from_db()
    # The stale count of 25 became the true 2 before frequency was scored (2 -> 40 points,
    # 25 would have been 100): 0.30*100 + 0.25*40 + 0 + 0 + 0.10*50 = 45.
    assert golfer.activity_count_30d == 2
    assert golfer.engagement_score == 45
    assert run.scored == 1 and run.local_date.isoformat() == "2026-11-24"
    assert Score.objects.for_tenant(tenant_a).get().engagement == 45
    stats = DailyStats.objects.for_tenant(tenant_a).get()
    assert stats.day.isoformat() == "2026-11-23"
    assert stats.bands == {"high": 0, "medium": 1, "low": 0}


def test_a_failed_run_releases_the_day(tenant_a, monkeypatch):
    now = datetime(2026, 11, 24, 0, 30, tzinfo=UTC)

    def boom(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("scoring.nightly.scores_write", boom)
    with pytest.raises(RuntimeError):
        tenant_score(tenant=tenant_a, kind=RunKind.NIGHTLY, now=now)
    assert tenants_due(now=now) == [tenant_a]
    monkeypatch.undo()
    assert tenant_score(tenant=tenant_a, kind=RunKind.NIGHTLY, now=now) is not None
    assert tenants_due(now=now) == []


def test_on_demand_runs_do_not_use_up_the_night(tenant_a, tenant_b):
    profile(tenant_a)
    with time_machine.travel(datetime(2026, 11, 23, 10, 0, tzinfo=UTC), tick=False):
        call_command("score_tenants", "links-a")
    assert ScoringRun.objects.for_tenant(tenant_a).get().kind == "manual"
    assert not ScoringRun.objects.for_tenant(tenant_b).exists()
    assert tenants_due(now=datetime(2026, 11, 24, 0, 30, tzinfo=UTC)) == [tenant_a]
    assert CustomerProfile.objects.for_tenant(tenant_a).get().engagement_score == 5


def test_beat_declares_the_sweep_and_it_goes_to_the_scoring_queue():
    assert settings.CELERY_BEAT_SCHEDULE["scoring-run-due"]["task"] == "scoring.run_due"
    for name in ("scoring.run_due", "scoring.score_tenant"):
        assert route_task(name, (), {}, {}) == {"queue": "scoring"}
