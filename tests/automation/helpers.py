"""Helpers of the journey tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from automation.delivery import journey_messages_send
from automation.engine import enrollments_create, journeys_advance
from automation.journeys import journey_activate, journey_create
from automation.models import Enrollment, EnrollmentStep
from customers.models import CustomerProfile
from marketing.models import MessageTemplate
from tests.customers.helpers import person

NOON = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # 12:00 in Johannesburg
_n = itertools.count()


def template(tenant, channel="email", **extra):
    return MessageTemplate.objects.create(
        tenant=tenant,
        name=extra.pop("name", f"Template {next(_n)}"),
        channel=channel,
        subject="Hello {{ first_name }}",
        html_body="<p>Hi {{ first_name }}</p>",
        body="Hi {{ first_name }}",
        **extra,
    )


def customer(tenant, email=None, **fields):
    profile = person(tenant, email=email or f"p{next(_n)}@example.com")
    fields.setdefault("email_opt_in", True)
    CustomerProfile.objects.filter(pk=profile.pk).update(**fields)
    profile.refresh_from_db()
    return profile


def journey(tenant, steps, *, activate=True, now=NOON, **data):
    data.setdefault("name", f"Journey {next(_n)}")
    data.setdefault("trigger", {"type": "manual"})
    created = journey_create(tenant=tenant, data=data, steps=steps)
    if activate:
        created = journey_activate(journey=created, now=now)
    return created


def send_end(tpl):
    return [
        {
            "key": "send",
            "type": "SEND",
            "config": {"channel": "email", "template_id": str(tpl.pk)},
            "next": ["end"],
        },
        {"key": "end", "type": "END"},
    ]


def enroll(j, *people, now=NOON, keys=None):
    return enrollments_create(
        journey=j, customer_ids=[p.pk for p in people], trigger_keys=keys, now=now, kick=False
    )


def advance(tenant=None, now=NOON, minutes=0):
    """A sweep, then what the sender tasks it kicks do (no worker runs these tests)."""
    at = now + timedelta(minutes=minutes)
    done = journeys_advance(tenant=tenant, now=at)
    journey_messages_send(tenant=tenant, now=at)
    return done


def trail(enrollment):
    return list(
        EnrollmentStep.objects.filter(enrollment=enrollment)
        .order_by("visit")
        .values_list("step_key", "outcome")
    )


def only(j, who):
    return Enrollment.objects.get(journey=j, customer=who)
