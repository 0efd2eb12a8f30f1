"""POST /api/v1/events: validation per event, duplicates, tenants, bad bodies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from customers.events import MAX_FUTURE_SKEW
from customers.ingest import MAX_EVENTS_PER_REQUEST, events_ingest
from customers.models import SyncLogEntry, SyncStatus

from .helpers import at, event

pytestmark = pytest.mark.django_db
URL = "/api/v1/events"


def test_one_event_is_accepted_and_written_to_the_sync_log(api_a, tenant_a):
    body = event(
        tenant_a,
        "teetime.booking.created",
        {"email": "a@example.com"},
        {"bookingId": "B1", "teeTime": at(-2)},
        id="bk-1",
    )
    response = api_a.post(URL, body, format="json")
    assert response.status_code == 202
    assert response.json() == {"accepted": ["bk-1"], "duplicates": [], "rejected": []}
    entry = SyncLogEntry.objects.get(tenant=tenant_a)
    assert (entry.source, entry.event_id, entry.type) == (
        "teetime",
        "bk-1",
        "teetime.booking.created",
    )
    assert entry.status == SyncStatus.PENDING
    assert entry.identity == {"email": "a@example.com"}
    assert entry.queued_at is not None


def test_a_batch_reports_accepted_duplicates_and_rejected_by_index(api_a, tenant_a):
    good = event(
        tenant_a,
        "teetime.round.completed",
        {"email": "a@example.com"},
        {"roundId": "R1"},
        id="ok-1",
    )
    api_a.post(URL, good, format="json")
    batch = {
        "events": [
            good,  # already received
            event(
                tenant_a,
                "teetime.booking.paid",
                {"email": "a@example.com"},
                {"bookingId": "B1", "amount": "-5", "currency": "rand"},
                id="bad-pay",
            ),
            event(
                tenant_a,
                "teetime.round.completed",
                {"email": "b@example.com"},
                {"roundId": "R2"},
                id="ok-2",
            ),
            event(
                tenant_a,
                "teetime.round.completed",
                {"email": "b@example.com"},
                {"roundId": "R2"},
                id="ok-2",
            ),  # twice in one request
            event(
                tenant_a,
                "teetime.round.completed",
                {"email": "not-an-email"},
                {"roundId": "R3"},
                id="bad-email",
            ),
            "not an event",
            event(tenant_a, "teetime.round.completed", None, {"roundId": "R4"}, id="nobody"),
        ]
    }
    response = api_a.post(URL, batch, format="json")
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == ["ok-2"]
    assert body["duplicates"] == ["ok-1", "ok-2"]
    rejected = {r["index"]: r for r in body["rejected"]}
    assert set(rejected) == {1, 4, 5, 6}
    assert rejected[1]["id"] == "bad-pay"
    assert set(rejected[1]["errors"]) == {"payload.amount", "payload.currency"}
    assert "identity.email" in rejected[4]["errors"]
    assert rejected[5] == {
        "index": 5,
        "id": None,
        "errors": {"event": ["Expected an event object."]},
    }
    assert rejected[6]["errors"] == {
        "identity": ["This event type is about a person: give an identifier."]
    }
    assert sorted(SyncLogEntry.objects.values_list("event_id", flat=True)) == ["ok-1", "ok-2"]


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        ({"tenantId": "parkland-b"}, "tenantId", "another tenant"),
        ({"tenantId": None}, "tenantId", "required"),
        ({"timestamp": "2026-11-24 08:00"}, "timestamp", "UTC offset"),
        ({"timestamp": "yesterday"}, "timestamp", "ISO 8601"),
        ({"timestamp": "2999-01-01T00:00:00Z"}, "timestamp", "future"),
        ({"type": "booking"}, "type", "dotted type"),
        ({"id": ""}, "id", "required"),
        ({"id": "x" * 129}, "id", "at most 128"),
        ({"identity": {"emailAddress": "a@example.com"}}, "identity.emailAddress", "Unknown"),
        ({"identity": {"phoneNumber": "12"}}, "identity.phoneNumber", "phone"),
        ({"payload": []}, "payload", "object"),
        ({"source": "teetime"}, "source", "Unknown envelope field"),
    ],
)
def test_envelope_errors_name_the_field(api_a, tenant_a, change, path, message):
    body = {
        **event(tenant_a, "teetime.round.completed", {"email": "a@example.com"}, {"roundId": "R1"}),
        **change,
    }
    response = api_a.post(URL, {"events": [body]}, format="json")
    assert response.status_code == 202
    [rejection] = response.json()["rejected"]
    assert any(message in m for m in rejection["errors"][path]), rejection
    assert not SyncLogEntry.objects.exists()


@pytest.mark.parametrize(
    ("type_", "payload", "path"),
    [
        ("teetime.booking.created", {"bookingId": "B"}, "payload.teeTime"),
        (
            "teetime.booking.paid",
            {"bookingId": "B", "amount": "1.005", "currency": "ZAR"},
            "payload.amount",
        ),
        ("teetime.handicap.updated", {"handicapIndex": 60}, "payload.handicapIndex"),
        ("scl.member.renewed", {}, "payload.renewalOn"),
        ("contactPreference.updated", {"source": "app"}, "payload"),
        ("contactPreference.updated", {"emailOptIn": "maybe"}, "payload.emailOptIn"),
        ("teetime.round.completed", {"roundId": "R", "holes": 12}, "payload.holes"),
    ],
)
def test_payload_schemas_are_enforced_per_type(api_a, tenant_a, type_, payload, path):
    body = event(tenant_a, type_, {"email": "a@example.com"}, payload)
    [rejection] = api_a.post(URL, body, format="json").json()["rejected"]
    assert path in rejection["errors"], rejection


def test_auth_registration_requires_the_auth_user_id(api_a, tenant_a):
    body = event(tenant_a, "auth.user.registered", {"email": "a@example.com"}, {})
    [rejection] = api_a.post(URL, body, format="json").json()["rejected"]
    assert rejection["errors"] == {"identity.authUserId": ["This event type requires it."]}


def test_tenant_may_be_named_by_id_too(api_a, tenant_a):
    body = event(
        tenant_a,
        "teetime.round.completed",
        {"email": "a@example.com"},
        {"roundId": "R1"},
        tenantId=str(tenant_a.pk),
    )
    assert api_a.post(URL, body, format="json").json()["accepted"] == [body["id"]]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"hello": "world"}, 400, None),
        ({"events": "all of them"}, 400, "events"),
        ({"events": []}, 400, "events"),
        (42, 400, None),
    ],
)
def test_bodies_that_are_not_events_are_400(api_a, body, status, field):
    response = api_a.post(URL, body, format="json")
    assert response.status_code == status
    error = response.json()["error"]
    if field:
        assert field in error["fields"]
    assert not SyncLogEntry.objects.exists()


def test_too_many_events_in_one_request(api_a, tenant_a):
    events = [event(tenant_a, "x.y", {"email": "a@example.com"})] * (MAX_EVENTS_PER_REQUEST + 1)
    response = api_a.post(URL, {"events": events}, format="json")
    assert response.status_code == 400
    assert "At most 1,000" in response.json()["error"]["fields"]["events"][0]


def test_a_list_body_is_a_batch(api_a, tenant_a):
    events = [
        event(tenant_a, "teetime.round.completed", {"email": "a@example.com"}, {"roundId": f"R{i}"})
        for i in range(3)
    ]
    assert len(api_a.post(URL, events, format="json").json()["accepted"]) == 3


def test_events_need_a_credential(client, tenant_a):
    body = event(tenant_a, "teetime.round.completed", {"email": "a@example.com"}, {"roundId": "R"})
    response = client.post(URL, body, content_type="application/json")
    assert response.status_code == 401
    assert not SyncLogEntry.objects.exists()


def test_malformed_json_is_400(api_a):
    response = api_a.generic("POST", URL, "{not json", content_type="application/json")
    assert response.status_code == 400


def test_a_payment_in_a_currency_iso_4217_does_not_have_is_rejected(api_a, tenant_a):
    def paid(currency: str, event_id: str) -> dict:
        return event(
            tenant_a,
            "teetime.booking.paid",
            {"email": "a@example.com"},
            {"bookingId": event_id, "amount": "350.00", "currency": currency},
            id=event_id,
        )

    batch = {"events": [paid("ABC", "p-abc"), paid("XTS", "p-xts"), paid("GBP", "p-gbp")]}
    response = api_a.post(URL, batch, format="json")
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == ["p-gbp"]
    advice = "is not an ISO 4217 currency code; use one such as ZAR or GBP."
    assert {r["id"]: r["errors"] for r in body["rejected"]} == {
        "p-abc": {"payload.currency": [f"ABC {advice}"]},
        "p-xts": {"payload.currency": [f"XTS {advice}"]},
    }
    assert list(SyncLogEntry.objects.values_list("event_id", flat=True)) == ["p-gbp"]


ROUND, WHO = "teetime.round.completed", {"email": "clock@example.com"}


def test_a_batch_is_judged_against_one_clock_the_callers(tenant_a):
    """The future-dating limit and the rows' times come from the ``now`` the caller gives,
    the same for every event of the batch, whatever the wall clock says."""
    now = datetime(2031, 6, 1, 12, 0, tzinfo=UTC)
    within = (now + MAX_FUTURE_SKEW - timedelta(minutes=1)).isoformat()
    beyond = (now + MAX_FUTURE_SKEW + timedelta(minutes=1)).isoformat()
    result = events_ingest(
        tenant=tenant_a,
        raw_events=[
            event(tenant_a, ROUND, WHO, {"roundId": "R1"}, id="soon", timestamp=within),
            event(tenant_a, ROUND, WHO, {"roundId": "R2"}, id="later", timestamp=beyond),
        ],
        now=now,
    )
    assert result.accepted == ["soon"]
    assert [(r.index, r.errors) for r in result.rejected] == [
        (1, {"timestamp": ["This event is dated in the future."]})
    ]
    row = SyncLogEntry.objects.get(tenant=tenant_a, event_id="soon")
    assert (row.created_at, row.queued_at) == (now, now)
