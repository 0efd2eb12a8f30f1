"""The ingestion's fast paths give what the slow ones gave: the payload schemas' values and
errors are DRF's own, the one-pass storability check never passes what the path-naming walk
refuses, and the sync log stores what was sent (a backslash followed by "u0000" is text, not a
NUL)."""

from __future__ import annotations

import json

import pytest

from customers import events
from customers.events import CATALOG, _plainly_storable, _unstorable_strings, payload_schema
from customers.models import SyncLogEntry

from .helpers import event, process_pending
from .test_unstorable_values import BAD, _round

URL = "/api/v1/events"

PAYLOADS = [
    ("teetime.booking.paid", {"bookingId": "B1", "amount": "350.00", "currency": "ZAR"}),
    ("teetime.booking.paid", {"bookingId": "B1", "amount": "0", "currency": "XYZ", "x": [1]}),
    ("teetime.booking.paid", {"amount": "abc"}),
    ("teetime.booking.created", {"bookingId": "B1", "teeTime": "2026-12-01T08:00:00+02:00"}),
    ("teetime.booking.created", {"bookingId": "", "teeTime": "soon", "players": 9}),
    ("teetime.round.completed", {"roundId": "R1", "holes": 9, "stablefordPoints": 36}),
    ("teetime.round.completed", {"roundId": "R1", "holes": 10, "grossScore": None}),
    ("teetime.handicap.updated", {"handicapIndex": "12.4"}),
    ("teetime.handicap.updated", {"handicapIndex": "99"}),
    ("contactPreference.updated", {"emailOptIn": False, "source": "web"}),
    ("contactPreference.updated", {"source": "web"}),
    ("contactPreference.updated", {"smsOptIn": "maybe"}),
    ("scl.member.updated", {"membershipType": "Full", "joinedOn": None, "note": "kept"}),
    ("scl.member.renewed", {"membershipType": "Full"}),
    ("scl.member.created", {"dateOfBirth": "1980-02-30", "firstName": "x" * 101}),
    ("teetime.competition.published", {"competitionId": "C1", "name": "Medal"}),
    ("teetime.competition.published", {"competitionId": "C1", "name": "M", "url": "nope"}),
    ("auth.user.registered", {"method": "google"}),
]


def _drf(schema, data):
    """What DRF's own loop gives for ``data``: the validated values, or the errors."""
    serializer = type(schema)(data=data)
    serializer.__dict__["_plan"] = None  # DRF's Serializer.to_internal_value runs
    return (serializer.validated_data, None) if serializer.is_valid() else (None, serializer.errors)


@pytest.mark.parametrize("type_, data", PAYLOADS)
def test_the_payload_loop_gives_drf_values_and_errors(type_, data):
    schema = payload_schema(CATALOG[type_].payload)
    assert schema._plan is not None  # the fast loop runs for every schema of the catalog
    try:
        ours = (dict(schema.run_validation(data)), None)
    except events.serializers.ValidationError as exc:
        ours = (None, exc.detail)
    expected_values, expected_errors = _drf(schema, data)
    assert ours == (
        dict(expected_values) if expected_values is not None else None,
        expected_errors,
    )


@pytest.mark.parametrize("case", list(BAD))
def test_the_one_pass_check_never_passes_what_the_walk_refuses(tenant_a, case):
    changes, _ = BAD[case]
    raw = _round(tenant_a, **changes)
    errors: dict = {}
    _unstorable_strings(raw, errors)
    if errors:
        assert not _plainly_storable(raw)


@pytest.mark.parametrize(
    "value",
    [
        "a\u0000b",
        "\ud800",
        {"k\u0000": 1},
        {"\udc00": 1},
        {1: "a non-string key"},
        float("nan"),
        float("inf"),
        [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["too deep"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
        object(),
    ],
)
def test_the_one_pass_check_sends_every_doubt_to_the_walk(value):
    assert not _plainly_storable({"payload": {"x": value}})


def test_plain_events_pass_the_one_pass_check(tenant_a):
    raw = _round(tenant_a, payload={"roundId": "R1", "note": "Grüße, 名前", "n": [1, 2.5, None]})
    assert _plainly_storable(raw)


@pytest.mark.django_db
def test_a_backslash_before_u0000_is_text_and_stored_as_sent(api_a, tenant_a):
    note = "C:\\u0000\\\\u0000 and \\\\\\u0000"  # backslashes then the text "u0000"
    body = [
        event(tenant_a, "teetime.round.completed", {"email": "a@example.com"}, {"roundId": "R1"}),
        _round(tenant_a, id="with-backslashes", payload={"roundId": "R2", "note": note}),
    ]
    response = api_a.post(URL, body, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["rejected"] == []
    row = SyncLogEntry.objects.get(event_id="with-backslashes")
    assert row.payload["note"] == note
    assert process_pending(tenant_a).processed == 2


@pytest.mark.django_db
def test_the_sync_log_keeps_each_value_of_the_batch(api_a, tenant_a):
    sent = [
        _round(
            tenant_a,
            id=f"e-{n}",
            timestamp=f"2026-0{n + 1}-02T03:04:05.12345{n}+02:00",
            identity={"email": f"P{n}@Example.com", "externalIds": {"Crm": f"x{n}"}},
            payload={"roundId": f"R{n}", "holes": 9, "note": "ünïcode ✓", "deep": {"a": [n]}},
        )
        for n in range(3)
    ]
    response = api_a.post(URL, sent, format="json")
    assert response.json()["accepted"] == ["e-0", "e-1", "e-2"]
    rows = list(SyncLogEntry.objects.order_by("id"))
    assert [r.event_id for r in rows] == ["e-0", "e-1", "e-2"]
    for n, row in enumerate(rows):
        assert row.source == "teetime" and row.type == "teetime.round.completed"
        assert row.occurred_at.isoformat() == f"2026-0{n + 1}-02T01:04:05.12345{n}+00:00"
        assert row.identity == {"email": f"p{n}@example.com", "external_ids": {"crm": f"x{n}"}}
        assert row.payload == {
            "roundId": f"R{n}",
            "holes": 9,
            "note": "ünïcode ✓",
            "deep": {"a": [n]},
        }
        assert json.dumps(row.payload)  # JSON as stored
