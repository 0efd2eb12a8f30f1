"""Journey services: settings and trigger validation, the step graph's validation with
errors keyed by step, versions with people in flight, and the state changes."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from automation.journeys import (
    journey_activate,
    journey_archive,
    journey_create,
    journey_pause,
    journey_resume,
    journey_steps_save,
)
from automation.models import Enrollment, EnrollmentStatus, JourneyStatus

from .helpers import NOON, customer, enroll, journey, send_end, template

pytestmark = pytest.mark.django_db


def _errors(exc_info) -> dict:
    return exc_info.value.message_dict


def test_trigger_and_settings_are_validated(tenant_a, tenant_b):
    with pytest.raises(ValidationError) as exc:
        journey_create(
            tenant=tenant_a,
            data={
                "name": "",
                "trigger": {"type": "event", "event_type": "nodots", "extra": 1},
                "holdout_percent": 80,
                "reentry": "after_days",
                "entry_criteria": {"combinator": "AND", "rules": [{"field": "nope"}]},
                "timezone": "Mars/Olympus",
            },
        )
    errors = _errors(exc)
    assert set(errors) >= {
        "name",
        "trigger.event_type",
        "trigger.extra",
        "holdout_percent",
        "reentry_days",
        "timezone",
    }
    assert any(key.startswith("entry_criteria") for key in errors)
    other_segment_trigger = {"type": "segment_entered", "segment_id": "not-a-uuid"}
    with pytest.raises(ValidationError) as exc:
        journey_create(tenant=tenant_a, data={"name": "x", "trigger": other_segment_trigger})
    assert _errors(exc) == {"trigger.segment_id": ["No such segment."]}


def test_graph_errors_are_keyed_by_step(tenant_a):
    email = template(tenant_a)
    sms = template(tenant_a, channel="sms")
    steps = [
        {
            "key": "send",
            "type": "SEND",
            "config": {"channel": "email", "template_id": str(sms.pk)},
            "next": ["check"],
        },
        {
            "key": "check",
            "type": "CONDITION",
            "config": {"event_type": "teetime.round.completed"},
            "next": ["send2", "check"],
        },
        {
            "key": "send2",
            "type": "SEND",
            "config": {"channel": "email", "template_id": str(email.pk)},
            "next": ["check"],
        },
        {"key": "orphan", "type": "END"},
        {"key": "split", "type": "SPLIT", "config": {"weights": [1]}, "next": ["orphan"]},
        {"key": "upd", "type": "UPDATE", "config": {"email_opt_in": True}, "next": ["orphan"]},
    ]
    with pytest.raises(ValidationError) as exc:
        journey_create(tenant=tenant_a, data={"name": "Bad"}, steps=steps)
    errors = _errors(exc)
    assert errors["steps.send.config.template_id"] == ["The template is for sms, not email."]
    assert "steps.split.config.weights" in errors
    assert "consent is never changed" in errors["steps.upd.config"][0]
    # Fix the configs: the graph errors remain.
    steps[0]["config"]["template_id"] = str(email.pk)
    steps[4]["config"]["weights"] = [1, 1]
    steps[4]["next"] = ["orphan", "orphan"]
    steps[5]["config"] = {"add_tags": ["x"]}
    with pytest.raises(ValidationError) as exc:
        journey_create(tenant=tenant_a, data={"name": "Bad"}, steps=steps)
    errors = _errors(exc)
    assert errors["steps.orphan"] == ["No path leads to this step from the first one."]
    assert "steps.split" in errors and "steps.upd" in errors
    assert "No path from this step reaches an END step." in errors["steps.send"]
    assert "This loop has no WAIT step." in errors["steps.check"]


def test_unknown_next_key_and_wrong_branch_count(tenant_a):
    steps = [
        {
            "key": "a",
            "type": "CONDITION",
            "config": {
                "criteria": {
                    "combinator": "AND",
                    "rules": [{"field": "email_opt_in", "operator": "eq", "value": True}],
                }
            },
            "next": ["zz"],
        },
    ]
    with pytest.raises(ValidationError) as exc:
        journey_create(tenant=tenant_a, data={"name": "x"}, steps=steps)
    assert _errors(exc)["steps.a.next"] == [
        "No step has the key 'zz'.",
        "A CONDITION step has 2 next step(s).",
    ]


def test_loop_through_a_wait_is_allowed(tenant_a):
    steps = [
        {"key": "wait", "type": "WAIT", "config": {"duration": {"days": 1}}, "next": ["check"]},
        {
            "key": "check",
            "type": "CONDITION",
            "config": {"event_type": "teetime.round.completed"},
            "next": ["end", "wait"],
        },
        {"key": "end", "type": "END"},
    ]
    j = journey_create(tenant=tenant_a, data={"name": "Loop"}, steps=steps)
    assert j.current_version.steps.count() == 3


def test_activation_needs_a_valid_graph_and_states_change(tenant_a):
    j = journey_create(tenant=tenant_a, data={"name": "Empty", "trigger": {"type": "manual"}})
    with pytest.raises(ValidationError) as exc:
        journey_activate(journey=j)
    assert _errors(exc) == {"steps": ["Add at least one step."]}
    tpl = template(tenant_a)
    journey_steps_save(journey=j, steps=send_end(tpl))
    # The template was deleted... no: its channel changed since: activation validates again.
    tpl.channel = "sms"
    tpl.save()
    with pytest.raises(ValidationError) as exc:
        journey_activate(journey=j)
    assert "steps.send.config.template_id" in _errors(exc)
    tpl.channel = "email"
    tpl.save()
    j = journey_activate(journey=j)
    assert j.status == JourneyStatus.ACTIVE
    with pytest.raises(ValidationError):
        journey_resume(journey=j)
    assert journey_pause(journey=j).status == JourneyStatus.PAUSED
    assert journey_resume(journey=j).status == JourneyStatus.ACTIVE


def test_archive_exits_everyone_in_flight(tenant_a):
    j = journey(tenant_a, send_end(template(tenant_a)))
    who = customer(tenant_a)
    enroll(j, who)
    journey_archive(journey=j, now=NOON)
    enrollment = Enrollment.objects.get(journey=j)
    assert (enrollment.status, enrollment.exit_reason) == (EnrollmentStatus.EXITED, "archived")
    with pytest.raises(ValidationError):
        journey_steps_save(journey=j, steps=send_end(template(tenant_a)))


def test_editing_steps_with_people_in_flight_makes_a_new_version(tenant_a):
    tpl = template(tenant_a)
    j = journey(tenant_a, send_end(tpl))
    first = j.current_version
    # Nobody in it yet: the version is edited in place.
    journey_steps_save(journey=j, steps=send_end(tpl))
    j.refresh_from_db()
    assert j.current_version == first
    enroll(j, customer(tenant_a))
    second = journey_steps_save(journey=j, steps=send_end(template(tenant_a)))
    j.refresh_from_db()
    assert (j.current_version, second.number) == (second, 2)
    assert Enrollment.objects.get(journey=j).version == first
