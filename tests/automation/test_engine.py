"""The journey engine: each step type, branches, waits across DST, goals and exits, holdout,
re-entry, quiet hours and the frequency cap on journey sends, pause and resume, versions with
people in flight, failing steps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import mail

from automation import engine
from automation.engine import next_local_time, split_branch
from automation.journeys import journey_pause, journey_resume, journey_steps_save
from automation.models import Enrollment, EnrollmentStatus, EnrollmentStep
from customers.models import Activity, CustomerProfile, Note
from marketing import messaging
from marketing.interactions import interaction_record
from marketing.models import Message, MessageStatus
from tests.factories import TenantFactory

from .helpers import (
    NOON,
    advance,
    customer,
    enroll,
    journey,
    only,
    send_end,
    template,
    trail,
)

pytestmark = pytest.mark.django_db
ROUND = "teetime.round.completed"


@pytest.fixture(autouse=True)
def _fresh_backend():
    messaging.get_backend.cache_clear()
    yield


def _send(key, tpl, nxt, channel="email"):
    return {
        "key": key,
        "type": "SEND",
        "config": {"channel": channel, "template_id": str(tpl.pk)},
        "next": [nxt],
    }


def _activity(who, type_=ROUND, at=NOON):
    Activity.objects.create(
        tenant=who.tenant,
        customer=who,
        type=type_,
        category="golf",
        title="Round",
        source_service="test",
        source_event_id=f"e-{who.pk}-{type_}-{at.isoformat()}",
        occurred_at=at,
    )


def test_send_then_end_sends_one_email_and_keeps_the_trail(tenant_a):
    tpl = template(tenant_a)
    j = journey(tenant_a, send_end(tpl))
    ann = customer(tenant_a, email="ann@example.com", first_name="Ann")
    assert enroll(j, ann) == 1
    advance(tenant_a)
    enrollment = only(j, ann)
    assert enrollment.status == EnrollmentStatus.COMPLETED
    assert trail(enrollment) == [("send", "message"), ("end", "completed")]
    message = Message.objects.get(customer=ann)
    assert (message.status, message.campaign_id, message.address) == (
        MessageStatus.SENT,
        None,
        "ann@example.com",
    )
    assert message.journey_step_id == EnrollmentStep.objects.get(step_key="send").pk
    assert [m.to for m in mail.outbox] == [["ann@example.com"]]
    assert mail.outbox[0].subject == "Hello Ann"
    # Another sweep sends nothing again.
    advance(tenant_a, minutes=5)
    assert len(mail.outbox) == 1


def test_journey_sends_skip_without_consent_and_over_the_frequency_cap(tenant_a):
    tenant_a.frequency_cap, tenant_a.frequency_window_days = 1, 7
    tenant_a.save()
    tpl = template(tenant_a)
    j = journey(tenant_a, send_end(tpl))
    j2 = journey(tenant_a, send_end(tpl))
    no_consent = customer(tenant_a, email_opt_in=False)
    capped = customer(tenant_a)
    enroll(j, no_consent, capped)
    advance(tenant_a)
    enroll(j2, capped)
    advance(tenant_a, minutes=1)
    assert Message.objects.get(customer=no_consent).skip_reason == "no_consent"
    assert Message.objects.filter(customer=capped, status="SENT").count() == 1
    assert Message.objects.get(customer=capped, skip_reason="frequency_cap")
    # Everyone still finishes the journey.
    assert set(Enrollment.objects.values_list("status", flat=True)) == {"COMPLETED"}


def test_quiet_hours_hold_the_send_step_until_morning(tenant_a):
    tpl = template(tenant_a)
    j = journey(tenant_a, send_end(tpl))
    who = customer(tenant_a)
    night = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)  # 22:00 in Johannesburg
    enroll(j, who, now=night)
    advance(tenant_a, now=night)
    enrollment = only(j, who)
    assert enrollment.step_key == "send" and not Message.objects.exists()
    assert enrollment.due_at == datetime(2026, 11, 25, 6, 0, tzinfo=UTC)  # 08:00 local
    advance(tenant_a, now=datetime(2026, 11, 25, 6, 0, tzinfo=UTC))
    assert Message.objects.get().status == MessageStatus.SENT


def test_wait_for_a_duration_then_move_on(tenant_a):
    tpl = template(tenant_a)
    steps = [
        {"key": "wait", "type": "WAIT", "config": {"duration": {"days": 2}}, "next": ["send"]},
        *send_end(tpl),
    ]
    j = journey(tenant_a, steps)
    who = customer(tenant_a)
    enroll(j, who)
    advance(tenant_a)
    enrollment = only(j, who)
    assert (enrollment.step_key, enrollment.due_at) == ("wait", NOON + timedelta(days=2))
    advance(tenant_a, minutes=60 * 47)
    assert only(j, who).step_key == "wait"
    advance(tenant_a, minutes=60 * 48)
    assert only(j, who).status == EnrollmentStatus.COMPLETED
    assert trail(only(j, who)) == [("wait", "waited"), ("send", "message"), ("end", "completed")]


@pytest.mark.parametrize(
    ("zone", "now", "weekdays", "expected"),
    [
        # UK, the last Sunday of March: 09:00 BST is 08:00 UTC (it was 09:00 UTC the day before).
        ("Europe/London", datetime(2026, 3, 28, 12, 0, tzinfo=UTC), [6], "2026-03-29T08:00"),
        # UK, the last Sunday of October: 09:00 GMT is 09:00 UTC.
        ("Europe/London", datetime(2026, 10, 24, 12, 0, tzinfo=UTC), [6], "2026-10-25T09:00"),
        # A Monday 09:00 in London, asked on the Friday before the clocks go forward.
        ("Europe/London", datetime(2026, 3, 27, 12, 0, tzinfo=UTC), [0], "2026-03-30T08:00"),
        # 01:30 does not exist in London on 29 March 2026: the wall time after the jump.
        ("Europe/London", datetime(2026, 3, 28, 12, 0, tzinfo=UTC), [6], None),
        # Johannesburg has no DST: 09:00 SAST is always 07:00 UTC.
        ("Africa/Johannesburg", datetime(2026, 3, 28, 12, 0, tzinfo=UTC), [], "2026-03-29T07:00"),
    ],
)
def test_wait_until_a_time_of_day_is_dst_correct(zone, now, weekdays, expected):
    if expected is None:
        result = next_local_time(now, ZoneInfo(zone), "01:30", weekdays)
        assert result == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 02:30 BST
        assert result.astimezone(ZoneInfo(zone)).hour == 2
        return
    result = next_local_time(now, ZoneInfo(zone), "09:00", weekdays)
    assert result == datetime.fromisoformat(expected).replace(tzinfo=UTC)
    assert result.astimezone(ZoneInfo(zone)).hour == 9


def test_wait_until_uses_the_journeys_timezone(db):
    uk = TenantFactory(uk=True)
    tpl = template(uk)
    steps = [
        {
            "key": "wait",
            "type": "WAIT",
            "config": {"until": {"time": "09:00", "weekdays": [6]}},
            "next": ["send"],
        },
        *send_end(tpl),
    ]
    j = journey(uk, steps, now=datetime(2026, 3, 28, 12, 0, tzinfo=UTC))
    who = customer(uk)
    saturday = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    enroll(j, who, now=saturday)
    advance(uk, now=saturday)
    assert only(j, who).due_at == datetime(2026, 3, 29, 8, 0, tzinfo=UTC)


def test_wait_for_an_event_or_time_out(tenant_a):
    tpl = template(tenant_a)
    steps = [
        {
            "key": "wait",
            "type": "WAIT",
            "config": {"event_type": ROUND, "timeout": {"days": 3}},
            "next": ["thanks", "nudge"],
        },
        _send("thanks", tpl, "end"),
        _send("nudge", tpl, "end"),
        {"key": "end", "type": "END"},
    ]
    j = journey(tenant_a, steps)
    played, idle = customer(tenant_a), customer(tenant_a)
    enroll(j, played, idle)
    advance(tenant_a)
    _activity(played, at=NOON + timedelta(days=1))
    # An event kick makes them due early: only the one who played moves.
    Enrollment.objects.update(due_at=NOON + timedelta(days=1))
    advance(tenant_a, minutes=60 * 24)
    assert only(j, played).status == EnrollmentStatus.COMPLETED
    assert trail(only(j, played))[0] == ("wait", "event")
    assert only(j, idle).step_key == "wait"
    assert only(j, idle).due_at == NOON + timedelta(days=3)
    advance(tenant_a, minutes=60 * 72)
    assert trail(only(j, idle)) == [("wait", "timeout"), ("nudge", "message"), ("end", "completed")]


def test_condition_on_profile_event_and_opened_message(tenant_a):
    tpl = template(tenant_a)
    steps = [
        _send("first", tpl, "wait"),
        {"key": "wait", "type": "WAIT", "config": {"duration": {"days": 1}}, "next": ["member"]},
        {
            "key": "member",
            "type": "CONDITION",
            "config": {
                "criteria": {
                    "combinator": "AND",
                    "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "MEMBER"}],
                }
            },
            "next": ["opened", "played"],
        },
        {
            "key": "opened",
            "type": "CONDITION",
            "config": {"opened": "first"},
            "next": ["end", "nudge"],
        },
        {
            "key": "played",
            "type": "CONDITION",
            "config": {"event_type": ROUND},
            "next": ["end", "nudge"],
        },
        _send("nudge", tpl, "end"),
        {"key": "end", "type": "END"},
    ]
    j = journey(tenant_a, steps)
    reader = customer(tenant_a, lifecycle_stage="MEMBER")
    ignorer = customer(tenant_a, lifecycle_stage="MEMBER")
    golfer = customer(tenant_a, lifecycle_stage="PROSPECT")
    enroll(j, reader, ignorer, golfer)
    advance(tenant_a)
    message = Message.objects.get(customer=reader)
    interaction_record(
        message=message, kind="OPENED", source="test", event_id="o1", occurred_at=NOON
    )
    _activity(golfer, at=NOON + timedelta(hours=1))
    advance(tenant_a, minutes=60 * 24)
    keys = {who: [k for k, _ in trail(only(j, who))] for who in (reader, ignorer, golfer)}
    assert keys[reader] == ["first", "wait", "member", "opened", "end"]
    assert keys[ignorer] == ["first", "wait", "member", "opened", "nudge", "end"]
    assert keys[golfer] == ["first", "wait", "member", "played", "end"]
    assert Message.objects.filter(customer=ignorer).count() == 2


def test_split_is_weighted_and_stable(tenant_a):
    assert split_branch(12345, [1, 1]) == split_branch(12345, [1, 1])
    counts = [0, 0, 0]
    for pk in range(3000):
        counts[split_branch(pk, [1, 2, 1])] += 1
    assert 600 < counts[0] < 900 and 1300 < counts[1] < 1700 and 600 < counts[2] < 900
    steps = [
        {"key": "split", "type": "SPLIT", "config": {"weights": [1, 1]}, "next": ["a", "b"]},
        {"key": "a", "type": "UPDATE", "config": {"add_tags": ["branch-a"]}, "next": ["end"]},
        {"key": "b", "type": "UPDATE", "config": {"add_tags": ["branch-b"]}, "next": ["end"]},
        {"key": "end", "type": "END"},
    ]
    j = journey(tenant_a, steps)
    people = [customer(tenant_a) for _ in range(20)]
    enroll(j, *people)
    advance(tenant_a)
    for enrollment in Enrollment.objects.filter(journey=j):
        branch = "ab"[split_branch(enrollment.pk, [1, 1])]
        tags = CustomerProfile.objects.get(pk=enrollment.customer_id).tags
        assert tags == [f"branch-{branch}"]


def test_update_and_task_steps(tenant_a):
    steps = [
        {
            "key": "upd",
            "type": "UPDATE",
            "config": {
                "add_tags": ["vip", "golfer"],
                "remove_tags": ["lapsed"],
                "lifecycle_stage": "MEMBER",
            },
            "next": ["task"],
        },
        {
            "key": "task",
            "type": "TASK",
            "config": {"body": "Call to welcome them."},
            "next": ["end"],
        },
        {"key": "end", "type": "END"},
    ]
    j = journey(tenant_a, steps, name="Welcome")
    who = customer(tenant_a, tags=["lapsed", "golfer"], email_opt_in=False)
    enroll(j, who)
    advance(tenant_a)
    who.refresh_from_db()
    assert (who.tags, who.lifecycle_stage, who.email_opt_in) == (["golfer", "vip"], "MEMBER", False)
    note = Note.objects.get(customer=who)
    assert (note.body, note.author_name, note.type) == (
        "Call to welcome them.",
        "Journey “Welcome”",
        "FOLLOW_UP",
    )
    assert Activity.objects.filter(customer=who, type="NOTE_ADDED").count() == 1


def test_goal_converts_and_exit_criteria_exit(tenant_a):
    tpl = template(tenant_a)
    steps = [
        {"key": "wait", "type": "WAIT", "config": {"duration": {"days": 7}}, "next": ["send"]},
        *send_end(tpl),
    ]
    j = journey(
        tenant_a,
        steps,
        goal={"event_type": "teetime.booking.paid"},
        exit_criteria={
            "criteria": {
                "combinator": "AND",
                "rules": [{"field": "tags", "operator": "contains", "value": "do-not-contact"}],
            }
        },
    )
    buyer, leaver, other = customer(tenant_a), customer(tenant_a), customer(tenant_a)
    enroll(j, buyer, leaver, other)
    advance(tenant_a)
    _activity(buyer, type_="teetime.booking.paid", at=NOON + timedelta(days=1))
    CustomerProfile.objects.filter(pk=leaver.pk).update(tags=["do-not-contact"])
    advance(tenant_a, minutes=60 * 24 * 7)
    assert only(j, buyer).status == EnrollmentStatus.CONVERTED
    assert (only(j, leaver).status, only(j, leaver).exit_reason) == ("EXITED", "exit_criteria")
    assert only(j, other).status == EnrollmentStatus.COMPLETED
    assert list(Message.objects.values_list("customer_id", flat=True)) == [other.pk]


def test_holdout_people_walk_the_path_without_messages(tenant_a):
    tpl = template(tenant_a)
    j = journey(tenant_a, send_end(tpl), holdout_percent=50)
    people = [customer(tenant_a) for _ in range(40)]
    enroll(j, *people)
    advance(tenant_a)
    held = set(
        Enrollment.objects.filter(journey=j, holdout=True).values_list("customer_id", flat=True)
    )
    assert 8 < len(held) < 32
    sent_to = set(Message.objects.values_list("customer_id", flat=True))
    assert sent_to == {p.pk for p in people} - held
    assert set(Enrollment.objects.values_list("status", flat=True)) == {"COMPLETED"}


def test_reentry_rules_and_one_active_enrollment(tenant_a):
    tpl = template(tenant_a)
    never = journey(tenant_a, send_end(tpl))
    always = journey(tenant_a, send_end(tpl), reentry="always")
    later = journey(tenant_a, send_end(tpl), reentry="after_days", reentry_days=30)
    who = customer(tenant_a)
    for j in (never, always, later):
        assert enroll(j, who) == 1
        assert enroll(j, who) == 0  # already in it (one active enrollment)
    advance(tenant_a)
    assert enroll(never, who, now=NOON + timedelta(days=1)) == 0
    assert enroll(always, who, now=NOON + timedelta(days=1)) == 1
    assert enroll(later, who, now=NOON + timedelta(days=1)) == 0
    assert enroll(later, who, now=NOON + timedelta(days=31)) == 1


def test_a_trigger_key_enrolls_once(tenant_a):
    j = journey(tenant_a, send_end(template(tenant_a)), reentry="always")
    who = customer(tenant_a)
    assert enroll(j, who, keys=["evt-1"]) == 1
    advance(tenant_a)
    assert enroll(j, who, keys=["evt-1"], now=NOON + timedelta(hours=1)) == 0
    assert enroll(j, who, keys=["evt-2"], now=NOON + timedelta(hours=1)) == 1


def test_entry_filter_and_inactive_journeys(tenant_a):
    members = {
        "combinator": "AND",
        "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "MEMBER"}],
    }
    j = journey(tenant_a, send_end(template(tenant_a)), entry_criteria=members)
    member, prospect = customer(tenant_a, lifecycle_stage="MEMBER"), customer(tenant_a)
    assert enroll(j, member, prospect) == 1
    draft = journey(tenant_a, send_end(template(tenant_a)), activate=False)
    assert enroll(draft, member) == 0


def test_pause_holds_people_and_resume_moves_them_on(tenant_a):
    j = journey(tenant_a, send_end(template(tenant_a)))
    who = customer(tenant_a)
    enroll(j, who)
    journey_pause(journey=j)
    advance(tenant_a)
    assert only(j, who).step_key == "send" and not Message.objects.exists()
    journey_resume(journey=j)
    advance(tenant_a, minutes=1)
    assert only(j, who).status == EnrollmentStatus.COMPLETED


def test_people_in_flight_finish_on_their_version(tenant_a):
    old, new = template(tenant_a, name="Old"), template(tenant_a, name="New")
    steps = [
        {"key": "wait", "type": "WAIT", "config": {"duration": {"days": 1}}, "next": ["send"]},
        *send_end(old),
    ]
    j = journey(tenant_a, steps)
    early = customer(tenant_a)
    enroll(j, early)
    advance(tenant_a)
    steps[1] = {**steps[1], "config": {"channel": "email", "template_id": str(new.pk)}}
    journey_steps_save(journey=j, steps=steps)
    j.refresh_from_db()
    late = customer(tenant_a)
    enroll(j, late)
    advance(tenant_a, minutes=60 * 24)
    advance(tenant_a, minutes=60 * 48)
    assert Message.objects.get(customer=early).template == old
    assert Message.objects.get(customer=late).template == new


def test_a_failing_step_retries_with_backoff_then_fails(tenant_a, monkeypatch):
    j = journey(tenant_a, send_end(template(tenant_a)))
    who = customer(tenant_a)
    enroll(j, who)

    def boom(*args, **kwargs):
        raise RuntimeError("backend down")

    monkeypatch.setitem(engine.EXECUTORS, "SEND", boom)
    advance(tenant_a)
    first = only(j, who)
    assert (first.status, first.attempts, first.due_at) == (
        "ACTIVE",
        1,
        NOON + timedelta(minutes=1),
    )
    advance(tenant_a, minutes=1)
    assert only(j, who).due_at == NOON + timedelta(minutes=3)
    advance(tenant_a, minutes=3)
    failed = only(j, who)
    assert failed.status == EnrollmentStatus.FAILED
    assert failed.error == "RuntimeError: backend down"
    assert trail(failed) == [("send", "failed")]
