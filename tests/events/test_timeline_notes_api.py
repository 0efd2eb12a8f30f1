"""The timeline (filters, keyset pages) and notes (privacy, pinning, edits) over the API."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from crm.services import api_key_create
from customers.models import Activity, Note, NoteRevision
from customers.services import profile_merge
from tests.customers.helpers import person

pytestmark = pytest.mark.django_db


def _activities(
    tenant, customer, count, *, start=None, category="golf", type_="teetime.round.completed"
):
    start = start or timezone.now()
    Activity.objects.bulk_create(
        Activity(
            tenant=tenant,
            customer=customer,
            type=type_,
            category=category,
            title=f"Round {i}",
            source_service="teetime",
            source_event_id=f"{type_}-{customer.pk}-{i}",
            # Pairs share a time, so the id decides their order.
            occurred_at=start - timedelta(hours=i // 2),
        )
        for i in range(count)
    )


def test_timeline_pages_through_everything_once_in_order(api_a, tenant_a):
    golfer = person(tenant_a, email="g@example.com")
    _activities(tenant_a, golfer, 25)
    url = f"/api/v1/customers/{golfer.pk}/timeline"
    seen, cursor = [], None
    while True:
        response = api_a.get(url, {"page_size": 10, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200
        body = response.json()
        seen += body["results"]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 25
    assert len({a["id"] for a in seen}) == 25
    keys = [(a["occurred_at"], a["id"]) for a in seen]
    assert keys == sorted(keys, reverse=True)


def test_timeline_filters_by_category_type_and_dates(api_a, tenant_a):
    golfer = person(tenant_a, email="f@example.com")
    now = timezone.now()
    _activities(tenant_a, golfer, 4, start=now)
    _activities(
        tenant_a,
        golfer,
        3,
        start=now - timedelta(days=10),
        category="commerce",
        type_="teetime.booking.paid",
    )
    url = f"/api/v1/customers/{golfer.pk}/timeline"
    assert len(api_a.get(url, {"category": "commerce"}).json()["results"]) == 3
    assert len(api_a.get(url, {"category": "commerce,golf"}).json()["results"]) == 7
    assert len(api_a.get(url, {"type": "teetime.round.completed"}).json()["results"]) == 4
    since = (now - timedelta(days=1)).isoformat()
    assert len(api_a.get(url, {"since": since}).json()["results"]) == 4
    assert len(api_a.get(url, {"until": since}).json()["results"]) == 3


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"category": "sport"}, "category"),
        ({"cursor": "!!not-a-cursor"}, "cursor"),
        ({"cursor": _cursor("0001-01-01T00:00:00+14:00|1")}, "cursor"),
        ({"cursor": _cursor("2026-01-01T00:00:00|1")}, "cursor"),
        ({"cursor": _cursor("2026-01-01T00:00:00+00:00|99999999999999999999999")}, "cursor"),
        ({"since": "0001-01-01T00:00:00+14:00"}, "since"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 1000}, "page_size"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
    ],
)
def test_timeline_bad_parameters_are_400_with_the_field(api_a, tenant_a, params, field):
    golfer = person(tenant_a, email="p@example.com")
    response = api_a.get(f"/api/v1/customers/{golfer.pk}/timeline", params)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_timeline_query_count_does_not_grow_with_the_page(api_a, tenant_a):
    golfer = person(tenant_a, email="q@example.com")
    _activities(tenant_a, golfer, 120)
    url = f"/api/v1/customers/{golfer.pk}/timeline"
    api_a.get(url)  # warm the credential and tenant caches
    counts = []
    for size in (5, 100):
        with CaptureQueriesContext(connection) as queries:
            assert len(api_a.get(url, {"page_size": size}).json()["results"]) == size
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 3  # credential, customer, one page of activities


def test_timeline_of_another_tenants_customer_is_404(api_b, tenant_a):
    golfer = person(tenant_a, email="x@example.com")
    _activities(tenant_a, golfer, 2)
    response = api_b.get(f"/api/v1/customers/{golfer.pk}/timeline")
    assert response.status_code == 404


# ----------------------------------------------------------------------------- notes


@pytest.fixture
def api_a2(tenant_a):
    """Another credential of tenant A (another service, or another person's key)."""
    client = APIClient()
    issued = api_key_create(tenant=tenant_a, name="Front desk")
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {issued.raw_key}")
    return client


def test_creating_a_note_adds_a_note_added_activity(api_a, tenant_a):
    member = person(tenant_a, email="n@example.com")
    response = api_a.post(
        f"/api/v1/customers/{member.pk}/notes",
        {"type": "CALL", "body": "Called about the club championship."},
        format="json",
    )
    assert response.status_code == 201
    note = response.json()
    assert (note["type"], note["is_pinned"], note["is_private"]) == ("CALL", False, False)
    assert note["author_name"].startswith("api_key:")
    activity = Activity.objects.get(customer=member, type="NOTE_ADDED")
    assert activity.category == "support"
    assert activity.title.startswith("Note added: Call")
    assert activity.metadata["note_id"] == note["id"]
    timeline = api_a.get(f"/api/v1/customers/{member.pk}/timeline").json()["results"]
    assert [a["type"] for a in timeline] == ["NOTE_ADDED"]


def test_notes_list_pinned_first_then_newest(api_a, tenant_a):
    member = person(tenant_a, email="l@example.com")
    url = f"/api/v1/customers/{member.pk}/notes"
    for body, pinned in (("old", False), ("pinned", True), ("new", False)):
        assert (
            api_a.post(url, {"body": body, "is_pinned": pinned}, format="json").status_code == 201
        )
    assert [n["body"] for n in api_a.get(url).json()] == ["pinned", "new", "old"]


def test_private_notes_are_invisible_to_other_callers(api_a, api_a2, api_b, tenant_a):
    member = person(tenant_a, email="pr@example.com")
    url = f"/api/v1/customers/{member.pk}/notes"
    private = api_a.post(
        url, {"body": "Going through a divorce; be gentle.", "is_private": True}, format="json"
    ).json()
    api_a.post(url, {"body": "Likes early tee times."}, format="json")
    assert [n["body"] for n in api_a2.get(url).json()] == ["Likes early tee times."]
    assert len(api_a.get(url).json()) == 2
    note_url = f"/api/v1/notes/{private['id']}"
    assert api_a2.get(note_url).status_code == 404
    assert api_a2.patch(note_url, {"body": "read it"}, format="json").status_code == 404
    assert api_a2.delete(note_url).status_code == 404
    assert api_b.get(note_url).status_code == 404
    activity = Activity.objects.get(customer=member, metadata__note_id=private["id"])
    assert "divorce" not in activity.title and activity.title == "Private note added"


def test_editing_a_note_keeps_who_and_when_and_the_earlier_text(api_a, api_a2, tenant_a):
    member = person(tenant_a, email="e@example.com")
    note = api_a.post(
        f"/api/v1/customers/{member.pk}/notes",
        {"body": "Complained about greens", "type": "COMPLAINT"},
        format="json",
    ).json()
    response = api_a2.patch(
        f"/api/v1/notes/{note['id']}",
        {"body": "Complained about the 7th green", "is_pinned": True},
        format="json",
    )
    assert response.status_code == 200
    edited = response.json()
    assert edited["body"] == "Complained about the 7th green"
    assert edited["is_pinned"] is True
    assert edited["edited_by"].startswith("api_key:") and edited["edited_at"]
    revision = NoteRevision.objects.get(note_id=note["id"])
    assert (revision.body, revision.type) == ("Complained about greens", "COMPLAINT")
    # Only the author decides who sees a note.
    response = api_a2.patch(f"/api/v1/notes/{note['id']}", {"is_private": True}, format="json")
    assert response.status_code == 400
    assert "is_private" in response.json()["error"]["fields"]


def test_deleting_a_note_hides_it(api_a, tenant_a):
    member = person(tenant_a, email="d@example.com")
    url = f"/api/v1/customers/{member.pk}/notes"
    note = api_a.post(url, {"body": "Temporary"}, format="json").json()
    assert api_a.delete(f"/api/v1/notes/{note['id']}").status_code == 204
    assert api_a.get(url).json() == []
    assert api_a.get(f"/api/v1/notes/{note['id']}").status_code == 404
    assert Note.objects.get(pk=note["id"]).deleted_at is not None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"body": "   "}, "body"),
        ({"body": "x", "type": "GOSSIP"}, "type"),
        ({"body": "x" * 10_001}, "body"),
        ({"body": "x", "is_private": "perhaps"}, "is_private"),
    ],
)
def test_bad_notes_are_400_and_change_nothing(api_a, tenant_a, body, field):
    member = person(tenant_a, email="b@example.com")
    response = api_a.post(f"/api/v1/customers/{member.pk}/notes", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not Note.objects.exists() and not Activity.objects.exists()


def test_notes_of_another_tenants_customer_are_404(api_b, api_a, tenant_a):
    member = person(tenant_a, email="o@example.com")
    url = f"/api/v1/customers/{member.pk}/notes"
    api_a.post(url, {"body": "Ours"}, format="json")
    assert api_b.get(url).status_code == 404
    assert api_b.post(url, {"body": "Theirs"}, format="json").status_code == 404
    assert Note.objects.count() == 1


def test_merge_moves_activities_and_notes(api_a, tenant_a):
    winner = person(tenant_a, email="w@example.com")
    loser = person(tenant_a, email="l2@example.com")
    _activities(tenant_a, loser, 3)
    api_a.post(f"/api/v1/customers/{loser.pk}/notes", {"body": "On the loser"}, format="json")
    merge = profile_merge(tenant=tenant_a, winner=winner, loser=loser, actor="test")
    assert merge.moved["activities"] == 4  # three rounds and the NOTE_ADDED
    assert merge.moved["notes"] == 1
    assert Activity.objects.filter(customer=winner).count() == 4
    assert [n["body"] for n in api_a.get(f"/api/v1/customers/{winner.pk}/notes").json()] == [
        "On the loser"
    ]
