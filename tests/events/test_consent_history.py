"""The consent history: every applied decision is recorded (append-only), ignored ones are
not; unsubscribes are recorded; the API lists it; merges keep it."""

from __future__ import annotations

import pytest

from customers.models import ConsentRecord
from customers.services import profile_merge
from tests.customers.helpers import person

from .helpers import at, event, run

pytestmark = pytest.mark.django_db


def test_applied_decisions_are_recorded_and_ignored_ones_are_not(tenant_a):
    fan = person(tenant_a, email="fan@example.com")
    newer, older = at(1), at(5)
    run(
        tenant_a,
        event(
            tenant_a,
            "contactPreference.updated",
            {"email": "fan@example.com"},
            {"emailOptIn": True, "smsOptIn": False, "source": "signup_form"},
            timestamp=newer,
            id="c-1",
        ),
    )
    run(
        tenant_a,
        event(
            tenant_a,
            "contactPreference.updated",
            {"email": "fan@example.com"},
            {"emailOptIn": False},
            timestamp=older,
            id="c-2",
        ),
    )  # too old
    records = list(ConsentRecord.objects.filter(customer=fan).order_by("channel"))
    assert [(r.channel, r.opt_in, r.source, r.evidence) for r in records] == [
        ("email", True, "signup_form", {"event_id": "c-1"}),
        ("sms", False, "signup_form", {"event_id": "c-1"}),
    ]


def test_the_api_lists_the_history_newest_first(api_a, api_b, tenant_a):
    fan = person(tenant_a, email="h@example.com")
    run(
        tenant_a,
        event(
            tenant_a,
            "contactPreference.updated",
            {"email": "h@example.com"},
            {"emailOptIn": True},
            timestamp=at(3),
        ),
    )
    run(
        tenant_a,
        event(
            tenant_a,
            "contactPreference.updated",
            {"email": "h@example.com"},
            {"emailOptIn": False, "smsOptIn": True},
            timestamp=at(1),
        ),
    )
    url = f"/api/v1/customers/{fan.pk}/consents"
    body = api_a.get(url).json()
    assert [(r["channel"], r["opt_in"]) for r in body["results"]][:1] in (
        [("email", False)],
        [("sms", True)],
    )
    assert len(body["results"]) == 3
    email = api_a.get(url, {"channel": "email"}).json()["results"]
    assert [r["opt_in"] for r in email] == [False, True]
    assert api_b.get(url).status_code == 404


def test_merge_keeps_the_losers_history(tenant_a):
    winner = person(tenant_a, email="w@example.com")
    loser = person(tenant_a, email="l@example.com")
    run(
        tenant_a,
        event(
            tenant_a, "contactPreference.updated", {"email": "l@example.com"}, {"pushOptIn": True}
        ),
    )
    merge = profile_merge(tenant=tenant_a, winner=winner, loser=loser, actor="test")
    assert merge.moved["consent_records"] == 1
    assert ConsentRecord.objects.get().customer_id == winner.pk
