"""Staff console: the customer page's timeline and notes; the sync log and its replay."""

from __future__ import annotations

import pytest

from customers import ingest
from customers.models import Activity, Note, SyncLogEntry, SyncStatus
from tests.customers.helpers import person
from tests.factories import StaffMembershipFactory, UserFactory

from .helpers import at, event, run
from .helpers import ingest as ingest_events

pytestmark = pytest.mark.django_db


@pytest.fixture
def console(client, staff_a):
    client.force_login(staff_a)
    return client


def _change_url(profile) -> str:
    return f"/admin/customers/customerprofile/{profile.pk}/change/"


def _golfer(tenant):
    golfer = person(tenant, email="golfer@example.com")
    run(
        tenant,
        *[
            event(
                tenant,
                "teetime.round.completed",
                {"email": "golfer@example.com"},
                {"roundId": f"R{i}", "course": "Links A"},
                timestamp=at(i + 1),
            )
            for i in range(30)
        ],
        event(
            tenant,
            "teetime.booking.paid",
            {"email": "golfer@example.com"},
            {"bookingId": "B1", "amount": "350", "currency": "ZAR"},
            timestamp=at(hours_ago=1),
        ),
    )
    return golfer


def test_customer_page_shows_the_timeline_newest_first_with_paging(console, tenant_a):
    golfer = _golfer(tenant_a)
    page = console.get(_change_url(golfer))
    assert page.status_code == 200
    timeline = page.context["timeline"]
    assert len(timeline) == 25
    assert timeline[0].title == "Paid ZAR 350.00 for a booking"
    assert "Played 18 holes at Links A" in page.content.decode()
    older = console.get(_change_url(golfer) + page.context["timeline_next_url"].split("#")[0])
    assert len(older.context["timeline"]) == 6
    assert older.context["timeline_next_url"] is None
    assert not {a.pk for a in timeline} & {a.pk for a in older.context["timeline"]}


def test_customer_page_filters_the_timeline_by_category(console, tenant_a):
    golfer = _golfer(tenant_a)
    page = console.get(_change_url(golfer), {"tl_category": "commerce"})
    assert [a.type for a in page.context["timeline"]] == ["teetime.booking.paid"]
    bogus = console.get(_change_url(golfer), {"tl_category": "nonsense", "tl_cursor": "zz"})
    assert bogus.status_code == 200 and len(bogus.context["timeline"]) == 25


def test_staff_add_and_pin_notes_and_private_ones_stay_private(console, client, tenant_a):
    golfer = _golfer(tenant_a)
    add = f"/admin/customers/customerprofile/{golfer.pk}/notes/add/"
    response = console.post(add, {"body": "Wants a lesson", "type": "FOLLOW_UP"})
    assert response.status_code == 302 and response.url.endswith("#notes")
    console.post(add, {"body": "Only for me", "type": "GENERAL", "is_private": "on"})
    assert Activity.objects.filter(customer=golfer, type="NOTE_ADDED").count() == 2
    first = Note.objects.get(body="Wants a lesson")
    assert (first.author_name, first.type) == ("anna", "FOLLOW_UP")
    console.post(f"/admin/customers/customerprofile/{golfer.pk}/notes/{first.pk}/pin/")
    first.refresh_from_db()
    assert first.is_pinned and first.edited_by == "anna"
    notes = console.get(_change_url(golfer)).context["notes"]
    assert [n.body for n in notes] == ["Wants a lesson", "Only for me"]
    # A colleague of the same tenant sees the public note only.
    colleague = StaffMembershipFactory(tenant=tenant_a, user=UserFactory(username="carl")).user
    client.force_login(colleague)
    assert [n.body for n in client.get(_change_url(golfer)).context["notes"]] == ["Wants a lesson"]
    private = Note.objects.get(body="Only for me")
    pin_private = f"/admin/customers/customerprofile/{golfer.pk}/notes/{private.pk}/pin/"
    assert client.post(pin_private).status_code == 404


def test_an_empty_note_is_refused_with_a_message(console, tenant_a):
    golfer = person(tenant_a, email="e@example.com")
    response = console.post(
        f"/admin/customers/customerprofile/{golfer.pk}/notes/add/", {"body": "  "}, follow=True
    )
    assert "Write something." in response.content.decode()
    assert not Note.objects.exists()


def test_notes_of_another_tenants_customer_cannot_be_added(console, tenant_b):
    outsider = person(tenant_b, email="o@example.com")
    response = console.post(
        f"/admin/customers/customerprofile/{outsider.pk}/notes/add/", {"body": "Sneaky"}
    )
    assert response.status_code == 403
    assert not Note.objects.exists()


def test_sync_log_filters_and_replays_failed_events(console, tenant_a, monkeypatch):
    monkeypatch.setattr(ingest, "_queue", lambda tenant, ids: None)
    ingest_events(
        tenant_a,
        *[
            event(
                tenant_a,
                "teetime.round.completed",
                {"email": f"p{i}@example.com"},
                {"roundId": f"R{i}"},
                id=f"ev-{i}",
            )
            for i in range(4)
        ],
    )
    SyncLogEntry.objects.filter(event_id__in=["ev-0", "ev-1"]).update(
        status=SyncStatus.FAILED, attempts=5, error="ValueError: broken payload"
    )
    url = "/admin/customers/synclogentry/"
    listing = console.get(url, {"status__exact": "FAILED"})
    assert listing.status_code == 200
    text = listing.content.decode()
    assert "ev-0" in text and "ev-1" in text and "ev-2" not in text
    assert "ValueError: broken payload" in text
    assert "ev-3" in console.get(url, {"q": "ev-3"}).content.decode()
    ids = list(SyncLogEntry.objects.values_list("pk", flat=True))
    response = console.post(
        url, {"action": "replay_selected", "_selected_action": ids}, follow=True
    )
    assert "Replayed 2 failed events" in response.content.decode()
    assert set(SyncLogEntry.objects.values_list("status", flat=True)) == {SyncStatus.PENDING}


def test_sync_log_is_scoped_to_the_staff_tenant(console, tenant_a, tenant_b):
    ingest_events(
        tenant_b,
        event(
            tenant_b,
            "teetime.round.completed",
            {"email": "b@example.com"},
            {"roundId": "R"},
            id="theirs",
        ),
    )
    ingest_events(
        tenant_a,
        event(
            tenant_a,
            "teetime.round.completed",
            {"email": "a@example.com"},
            {"roundId": "R"},
            id="ours",
        ),
    )
    text = console.get("/admin/customers/synclogentry/").content.decode()
    assert "ours" in text and "theirs" not in text
    entry = SyncLogEntry.objects.get(event_id="theirs")
    assert console.get(f"/admin/customers/synclogentry/{entry.pk}/change/").status_code in (
        302,
        404,
    )
