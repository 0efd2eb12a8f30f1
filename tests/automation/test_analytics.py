"""Journey analytics come from the history rows: entered, current, outcomes, sends by
outcome, goal conversion and median time to goal, holdout lift with its interval."""

from __future__ import annotations

import pytest

from automation.analytics import holdout_lift, journey_analytics
from automation.models import Enrollment
from customers.models import Activity
from marketing import messaging
from marketing.interactions import interaction_record
from marketing.models import Message

from .helpers import NOON, advance, customer, enroll, journey, template

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_backend():
    messaging.get_backend.cache_clear()


def test_figures_per_journey_and_step(tenant_a):
    tpl = template(tenant_a)
    steps = [
        {
            "key": "send",
            "type": "SEND",
            "config": {"channel": "email", "template_id": str(tpl.pk)},
            "next": ["wait"],
        },
        {"key": "wait", "type": "WAIT", "config": {"duration": {"days": 2}}, "next": ["end"]},
        {"key": "end", "type": "END"},
    ]
    j = journey(tenant_a, steps, goal={"event_type": "teetime.booking.paid"})
    people = [customer(tenant_a) for _ in range(4)]
    people.append(customer(tenant_a, email_opt_in=False))
    enroll(j, *people)
    advance(tenant_a)
    opened = Message.objects.filter(status="SENT").first()
    interaction_record(message=opened, kind="OPENED", source="t", event_id="o", occurred_at=NOON)
    buyer = people[0]
    Activity.objects.create(
        tenant=tenant_a,
        customer=buyer,
        type="teetime.booking.paid",
        category="commerce",
        title="Paid",
        source_service="t",
        source_event_id="p",
        occurred_at=NOON,
    )
    advance(tenant_a, minutes=60 * 24 * 2)
    figures = journey_analytics(journey=j)
    assert (figures["entered"], figures["converted"], figures["completed"]) == (5, 1, 4)
    assert figures["goal"]["conversion_rate"] == 0.2
    assert figures["goal"]["median_seconds_to_goal"] == 2 * 86400
    assert figures["steps"]["send"]["messages"] == {
        "sent": 4,
        "skipped:no_consent": 1,
        "opened": 1,
        "clicked": 0,
    }
    assert figures["steps"]["send"]["outcomes"] == {"message": 5}
    assert figures["steps"]["wait"]["outcomes"] == {"waited": 4, "converted": 1}
    assert figures["steps"]["end"]["people"] == 4


def test_current_step_counts_people_waiting(tenant_a):
    steps = [
        {"key": "wait", "type": "WAIT", "config": {"duration": {"days": 2}}, "next": ["end"]},
        {"key": "end", "type": "END"},
    ]
    j = journey(tenant_a, steps)
    enroll(j, customer(tenant_a), customer(tenant_a))
    advance(tenant_a)
    assert journey_analytics(journey=j)["steps"]["wait"]["current"] == 2
    assert Enrollment.objects.filter(journey=j, status="ACTIVE").count() == 2


def test_holdout_lift_interval():
    result = holdout_lift(1000, 200, 1000, 150)
    assert result["lift"] == pytest.approx(0.05)
    assert result["low"] == pytest.approx(
        0.05 - 1.96 * (0.2 * 0.8 / 1000 + 0.15 * 0.85 / 1000) ** 0.5
    )
    assert result["low"] > 0  # significant at 95%
    assert holdout_lift(10, 1, 0, 0) == {"lift": None, "low": None, "high": None}
