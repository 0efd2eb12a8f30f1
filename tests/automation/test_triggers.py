"""What brings people into journeys: event triggers inside the event pipeline (payload
conditions, replays, journeys created after the subscriber registered), waking enrollments
that wait for an event, segment entry and exit, date triggers, manual / segment / CSV
enrollment; merges and erasure."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError

from automation.journeys import journey_activate
from automation.models import Enrollment, EnrollmentStatus
from automation.triggers import (
    date_triggers_run,
    journey_enroll_csv,
    journey_enroll_customers,
    journey_enroll_segment,
    journeys_on_events,
    payload_matches,
    segment_triggers_run,
)
from crm.registry import ProcessedEvent
from customers.erasure import customer_erase
from customers.models import Activity, CustomerProfile
from customers.services import profile_merge
from marketing.segments import segment_create, segment_members_add, segment_members_remove
from tests.events.helpers import event, run

from .helpers import NOON, advance, customer, journey, send_end, template

pytestmark = pytest.mark.django_db
ROUND = "teetime.round.completed"


@pytest.fixture(autouse=True)
def _noon():
    with time_machine.travel(NOON, tick=True):
        yield


def _wait_steps(tpl):
    return [
        {"key": "wait", "type": "WAIT", "config": {"duration": {"days": 1}}, "next": ["send"]},
        *send_end(tpl),
    ]


def _event(who, type_=ROUND, payload=None, event_id="e1"):
    return ProcessedEvent(
        event_id=event_id,
        type=type_,
        source="teetime",
        occurred_at=NOON,
        payload=payload or {},
        profile_id=who.pk,
    )


def test_payload_conditions():
    payload = {"amount": "150.00", "course": {"name": "Old"}, "holes": 18}
    assert payload_matches([{"field": "amount", "operator": "gte", "value": 100}], payload)
    assert not payload_matches([{"field": "amount", "operator": "lt", "value": 100}], payload)
    assert payload_matches([{"field": "course.name", "operator": "in", "value": ["Old"]}], payload)
    assert payload_matches([{"field": "holes", "operator": "eq", "value": "18"}], payload)
    assert not payload_matches([{"field": "missing", "operator": "eq", "value": 1}], payload)
    assert payload_matches([{"field": "missing", "operator": "neq", "value": 1}], payload)
    assert payload_matches([{"field": "missing", "operator": "exists", "value": False}], payload)


def test_event_trigger_through_the_pipeline(tenant_a, django_capture_on_commit_callbacks):
    tpl = template(tenant_a)
    trigger = {
        "type": "event",
        "event_type": "teetime.booking.paid",
        "conditions": [{"field": "amount", "operator": "gte", "value": 100}],
    }
    j = journey(tenant_a, _wait_steps(tpl), trigger=trigger)
    with django_capture_on_commit_callbacks(execute=True):
        run(
            tenant_a,
            event(
                tenant_a,
                "teetime.booking.paid",
                {"email": "big@example.com"},
                {"bookingId": "B1", "amount": "150", "currency": "ZAR"},
            ),
            event(
                tenant_a,
                "teetime.booking.paid",
                {"email": "small@example.com"},
                {"bookingId": "B2", "amount": "50", "currency": "ZAR"},
            ),
        )
    enrolled = Enrollment.objects.filter(journey=j).select_related("customer")
    assert [e.customer.email for e in enrolled] == ["big@example.com"]
    assert enrolled[0].trigger_key.startswith("event:")


def test_a_replayed_event_enrolls_once_and_new_journeys_are_seen(tenant_a):
    tpl = template(tenant_a)
    who = customer(tenant_a)
    first = journey(
        tenant_a, _wait_steps(tpl), trigger={"type": "event", "event_type": ROUND}, reentry="always"
    )
    journeys_on_events(tenant=tenant_a, events=[_event(who)])
    journeys_on_events(tenant=tenant_a, events=[_event(who)])
    assert Enrollment.objects.filter(journey=first).count() == 1
    # A journey activated after the subscriber registered is read from the database.
    second = journey(tenant_a, _wait_steps(tpl), trigger={"type": "event", "event_type": ROUND})
    journeys_on_events(tenant=tenant_a, events=[_event(who, event_id="e2")])
    assert Enrollment.objects.filter(journey=second).count() == 1


def test_a_tenant_without_an_active_journey_costs_the_subscriber_one_query(
    tenant_a, tenant_b, django_assert_num_queries
):
    tpl = template(tenant_a)
    who = customer(tenant_a)
    # A draft of this tenant and an active journey of another tenant do not count.
    draft = journey(
        tenant_a, _wait_steps(tpl), trigger={"type": "event", "event_type": ROUND}, activate=False
    )
    journey(
        tenant_b, _wait_steps(template(tenant_b)), trigger={"type": "event", "event_type": ROUND}
    )
    with django_assert_num_queries(1) as captured:
        journeys_on_events(tenant=tenant_a, events=[_event(who)])
    # The plain check, not the read of the journeys with their steps (7 ms a batch, mostly
    # Django building the statement, against 1.5 ms).
    sql = captured.captured_queries[0]["sql"]
    assert sql.endswith("LIMIT 1") and '"automation_step"' not in sql
    assert not Enrollment.objects.filter(tenant=tenant_a).exists()
    # Activated, it takes the next batch's events (read fresh, nothing cached).
    journey_activate(journey=draft, now=NOON)
    journeys_on_events(tenant=tenant_a, events=[_event(who, event_id="e2")])
    assert Enrollment.objects.filter(journey=draft).count() == 1


def test_an_awaited_event_makes_the_enrollment_due_now(tenant_a):
    tpl = template(tenant_a)
    steps = [
        {
            "key": "wait",
            "type": "WAIT",
            "config": {"event_type": ROUND, "timeout": {"days": 5}},
            "next": ["send", "end"],
        },
        *send_end(tpl),
    ]
    j = journey(tenant_a, steps)
    who, other = customer(tenant_a), customer(tenant_a)
    journey_enroll_customers(journey=j, customer_ids=[who.pk, other.pk], now=NOON)
    later = NOON + timedelta(hours=2)
    Activity.objects.create(
        tenant=tenant_a,
        customer=who,
        type=ROUND,
        category="golf",
        title="Round",
        source_service="teetime",
        source_event_id="r1",
        occurred_at=later,
    )
    journeys_on_events(tenant=tenant_a, events=[_event(who)])
    due = dict(Enrollment.objects.values_list("customer_id", "due_at"))
    assert due[who.pk] <= datetime.now(UTC)
    assert due[other.pk] == NOON + timedelta(days=5)


def test_segment_entered_and_left(tenant_a):
    tpl = template(tenant_a)
    segment = segment_create(tenant=tenant_a, data={"name": "VIP", "type": "STATIC"})
    early = customer(tenant_a)
    segment_members_add(segment=segment, customer_ids=[early.pk])  # before activation
    entered = journey(
        tenant_a,
        _wait_steps(tpl),
        trigger={"type": "segment_entered", "segment_id": str(segment.pk)},
    )
    left = journey(
        tenant_a, _wait_steps(tpl), trigger={"type": "segment_left", "segment_id": str(segment.pk)}
    )
    new = customer(tenant_a)
    segment_members_add(segment=segment, customer_ids=[new.pk])
    segment_members_remove(segment=segment, customer_ids=[early.pk])
    assert segment_triggers_run(now=NOON) == 2
    assert segment_triggers_run(now=NOON) == 0
    assert list(Enrollment.objects.filter(journey=entered).values_list("customer", flat=True)) == [
        new.pk
    ]
    assert list(Enrollment.objects.filter(journey=left).values_list("customer", flat=True)) == [
        early.pk
    ]


def test_date_triggers_once_a_day(tenant_a):
    tpl = template(tenant_a)
    today = date(2026, 11, 24)
    bday = customer(tenant_a, date_of_birth=date(1980, 11, 24))
    customer(tenant_a, date_of_birth=date(1980, 11, 25))
    renews = customer(tenant_a, membership_renewal_on=today + timedelta(days=30))
    idle = customer(tenant_a)
    Activity.objects.create(
        tenant=tenant_a,
        customer=idle,
        type=ROUND,
        category="golf",
        title="Round",
        source_service="teetime",
        source_event_id="r-old",
        occurred_at=datetime(2026, 10, 25, 9, 0, tzinfo=UTC),
    )
    birthday = journey(tenant_a, _wait_steps(tpl), trigger={"type": "date", "kind": "birthday"})
    renewal = journey(
        tenant_a, _wait_steps(tpl), trigger={"type": "date", "kind": "renewal_upcoming", "days": 30}
    )
    lapsing = journey(
        tenant_a, _wait_steps(tpl), trigger={"type": "date", "kind": "since_last_round", "days": 30}
    )
    assert date_triggers_run(now=NOON) == 3
    assert date_triggers_run(now=NOON + timedelta(hours=1)) == 0
    who = {
        j.pk: list(Enrollment.objects.filter(journey=j).values_list("customer", flat=True))
        for j in (birthday, renewal, lapsing)
    }
    assert who == {birthday.pk: [bday.pk], renewal.pk: [renews.pk], lapsing.pk: [idle.pk]}


def test_manual_segment_and_csv_enrollment(tenant_a, tenant_b):
    j = journey(tenant_a, _wait_steps(template(tenant_a)))
    ann = customer(tenant_a, email="ann@example.com")
    bob = customer(tenant_a, email="bob@example.com")
    stranger = customer(tenant_b)
    assert journey_enroll_customers(journey=j, customer_ids=[ann.pk, stranger.pk]) == 1
    segment = segment_create(tenant=tenant_a, data={"name": "S", "type": "STATIC"})
    segment_members_add(segment=segment, customer_ids=[ann.pk, bob.pk])
    assert journey_enroll_segment(journey=j, segment=segment) == 1  # Ann is in already
    other = journey(tenant_a, _wait_steps(template(tenant_a)))
    result = journey_enroll_csv(
        journey=other,
        text="email,id\nANN@example.com,\nnobody@example.com,\n,not-an-id\n",
    )
    assert (result["matched"], result["entered"]) == (1, 1)
    assert result["unmatched"] == [
        {"line": 3, "error": "No customer with this email."},
        {"line": 4, "error": "Not a valid id, email or phone."},
    ]
    draft = journey(tenant_a, _wait_steps(template(tenant_a)), activate=False)
    with pytest.raises(ValidationError):
        journey_enroll_customers(journey=draft, customer_ids=[ann.pk])


def test_merge_moves_enrollments_without_doubling_a_journey(tenant_a):
    tpl = template(tenant_a)
    both = journey(tenant_a, _wait_steps(tpl))
    only_loser = journey(tenant_a, _wait_steps(tpl))
    winner, loser = customer(tenant_a), customer(tenant_a)
    journey_enroll_customers(journey=both, customer_ids=[winner.pk, loser.pk], now=NOON)
    journey_enroll_customers(journey=only_loser, customer_ids=[loser.pk], now=NOON)
    profile_merge(tenant=tenant_a, winner=winner, loser=loser, actor="test")
    rows = Enrollment.objects.filter(customer=winner)
    assert rows.filter(journey=both, status="ACTIVE").count() == 1
    assert rows.filter(journey=both, status="EXITED", exit_reason="merged").count() == 1
    assert rows.filter(journey=only_loser, status="ACTIVE").count() == 1
    assert not Enrollment.objects.filter(customer=loser).exists()
    advance(tenant_a, minutes=60 * 24)
    assert set(rows.values_list("status", flat=True)) == {"COMPLETED", "EXITED"}


def test_erasure_removes_enrollments(tenant_a):
    j = journey(tenant_a, send_end(template(tenant_a)))
    who, other = customer(tenant_a), customer(tenant_a)
    journey_enroll_customers(journey=j, customer_ids=[who.pk, other.pk], now=NOON)
    advance(tenant_a)
    customer_erase(tenant=tenant_a, customer=who, actor="test")
    assert list(Enrollment.objects.values_list("customer", flat=True)) == [other.pk]
    assert Enrollment.objects.get().status == EnrollmentStatus.COMPLETED
    assert CustomerProfile.objects.get(pk=who.pk).status == "ERASED"
