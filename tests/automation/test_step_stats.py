"""The per-step figures (``StepStat``) are a sum of the history rows: after a random mix of
entries, loops, branches, goals, failures, merges and erasures over several days they equal
a recount from the history, before and after the roll-up, and a rebuild changes nothing."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta

import pytest

from automation.analytics import journey_analytics
from automation.engine import erase_enrollments, move_enrollments
from automation.journeys import journey_archive
from automation.models import EnrollmentStep, StepStat
from automation.stats import (
    step_stats_read,
    step_stats_rebuild,
    step_stats_recount,
    step_stats_roll_up,
)
from customers.models import Activity

from .helpers import NOON, advance, customer, enroll, journey

pytestmark = pytest.mark.django_db

LOOP = [
    {"key": "wait", "type": "WAIT", "config": {"duration": {"hours": 20}}, "next": ["check"]},
    {
        "key": "check",
        "type": "CONDITION",
        "config": {"event_type": "teetime.round.completed"},
        "next": ["split", "tag"],
    },
    {"key": "tag", "type": "UPDATE", "config": {"add_tags": ["nudged"]}, "next": ["wait"]},
    {"key": "split", "type": "SPLIT", "config": {"weights": [50, 50]}, "next": ["end", "note"]},
    {"key": "note", "type": "TASK", "config": {"body": "Call them"}, "next": ["end"]},
    {"key": "end", "type": "END"},
]
_n = itertools.count()


def _activity(tenant, who, type_, at):
    Activity.objects.create(
        tenant=tenant,
        customer=who,
        type=type_,
        category="golf",
        title=type_,
        source_service="t",
        source_event_id=f"e{next(_n)}",
        occurred_at=at,
    )


def test_figures_equal_a_recount_of_the_history_after_random_moves(tenant_a):
    rng = random.Random(13)
    j = journey(
        tenant_a,
        LOOP,
        reentry="always",
        holdout_percent=20,
        goal={"event_type": "teetime.booking.paid"},
        exit_criteria={"event_type": "teetime.competition.entered"},
    )
    other = journey(tenant_a, LOOP, reentry="never")
    people = [customer(tenant_a) for _ in range(30)]
    for day in range(6):
        for hour in (0, 9, 17):  # several sweeps a day, across UTC midnight
            now = NOON + timedelta(days=day, hours=hour)
            enroll(j, *rng.sample(people, 8), now=now)
            enroll(other, *rng.sample(people, 3), now=now)
            for who in rng.sample(people, 6):
                kind = rng.choice(
                    ["teetime.round.completed"] * 3
                    + ["teetime.booking.paid", "teetime.competition.entered"]
                )
                _activity(tenant_a, who, kind, now)
            advance(tenant_a, now=now)
        if day == 2:
            erase_enrollments(tenant=tenant_a, customer=people[0], addresses={})
            move_enrollments(tenant=tenant_a, winner=people[1], loser=people[2])

    assert EnrollmentStep.objects.filter(enrollment__journey=j).count() > 200
    for each in (j, other):
        recount = step_stats_recount(journey=each)
        assert set(recount) >= {"wait", "check", "tag", "split", "end"}
        assert step_stats_read(journey=each) == recount

    before = journey_analytics(journey=j)
    deltas = StepStat.objects.filter(journey=j).count()
    assert step_stats_roll_up(now=NOON + timedelta(days=7)) > 0
    assert StepStat.objects.filter(rolled=False).count() == 0
    assert StepStat.objects.filter(journey=j).count() < deltas
    assert step_stats_read(journey=j) == step_stats_recount(journey=j)
    step_stats_rebuild(journey=j, now=NOON + timedelta(days=7))
    assert journey_analytics(journey=j) == before
    archived = journey_archive(journey=j, now=NOON + timedelta(days=7))
    assert journey_analytics(journey=archived)["exited"]["archived"] == before["active"]
    assert step_stats_read(journey=j) == step_stats_recount(journey=j)


def test_figures_of_a_step_visited_twice_count_the_person_once(tenant_a):
    j = journey(tenant_a, LOOP)
    who = customer(tenant_a)
    enroll(j, who)
    for day in range(3):
        advance(tenant_a, now=NOON + timedelta(days=day))
    steps = journey_analytics(journey=j)["steps"]
    assert (steps["wait"]["visits"], steps["wait"]["people"]) == (3, 1)
    assert steps["check"]["outcomes"] == {"no": 2}
    assert steps["tag"]["outcomes"] == {"updated": 2}


def test_erasure_takes_the_person_off_the_figures(tenant_a):
    j = journey(tenant_a, LOOP)
    kept, erased = customer(tenant_a), customer(tenant_a)
    enroll(j, kept, erased)
    advance(tenant_a, now=NOON + timedelta(days=1))
    erase_enrollments(tenant=tenant_a, customer=erased, addresses={})
    steps = journey_analytics(journey=j)["steps"]
    assert (steps["wait"]["visits"], steps["wait"]["people"]) == (2, 1)
    assert steps["check"]["outcomes"] == {"no": 1}
    assert (journey_analytics(journey=j)["entered"], journey_analytics(journey=j)["active"]) == (
        1,
        1,
    )
    step_stats_roll_up(now=NOON + timedelta(days=1))
    assert journey_analytics(journey=j)["steps"] == steps
    assert step_stats_read(journey=j) == step_stats_recount(journey=j)
