"""The customer page's timeline and notes, and the sync log's replay, in a real browser."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from customers import ingest
from customers.models import Note, SyncLogEntry, SyncStatus
from tests.browser.helpers import login
from tests.customers.helpers import person
from tests.events.helpers import at, event, run
from tests.factories import PASSWORD, StaffMembershipFactory, TenantFactory, UserFactory


@pytest.fixture
def golfer(transactional_db):
    tenant = TenantFactory(slug="links-a", name="Links A Golf")
    StaffMembershipFactory(tenant=tenant, user=UserFactory(username="anna"))
    profile = person(tenant, email="thabo@example.com", first_name="Thabo")
    run(
        tenant,
        *[
            event(
                tenant,
                "teetime.round.completed",
                {"email": "thabo@example.com"},
                {"roundId": f"R{i}", "course": "Links A", "stablefordPoints": 30 + i},
                timestamp=at(i + 1),
            )
            for i in range(27)
        ],
        event(
            tenant,
            "teetime.booking.paid",
            {"email": "thabo@example.com"},
            {"bookingId": "B1", "amount": "350", "currency": "ZAR"},
            timestamp=at(hours_ago=2),
        ),
    )
    return tenant, profile


def test_timeline_filters_pages_and_notes_can_be_added_and_pinned(page, live_server, golfer):
    _tenant, profile = golfer
    login(page, live_server.url, "anna", PASSWORD)
    page.goto(f"{live_server.url}/admin/customers/customerprofile/{profile.pk}/change/")

    activities = page.locator("[data-testid=activity]")
    assert activities.count() == 25
    assert "Paid ZAR 350.00 for a booking" in activities.first.inner_text()

    page.click("[data-testid=timeline-older]")
    page.wait_for_url("**tl_cursor=**")
    expect(page.locator("[data-testid=activity]")).to_have_count(3)

    page.click("a[data-category=commerce]")
    page.wait_for_url("**tl_category=commerce**")
    expect(page.locator("[data-testid=activity]")).to_have_count(1)
    assert page.locator("[data-testid=activity]").first.get_attribute("data-category") == "commerce"

    form = page.locator("[data-testid=note-form]")
    form.locator("textarea[name=body]").fill("Asked about junior lessons for his son.")
    form.locator("select[name=type]").select_option("FOLLOW_UP")
    form.locator("button[type=submit]").click()
    page.wait_for_load_state("networkidle")
    note = page.locator("[data-testid=note]").first
    assert "Asked about junior lessons" in note.inner_text()
    assert "Follow-up" in note.inner_text()
    assert note.get_attribute("data-pinned") == "false"
    # The note is on the timeline too.
    assert "Note added: Follow-up" in page.locator("[data-testid=timeline]").inner_text()

    note.locator("button:has-text('Pin')").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("[data-testid=note]").first.get_attribute("data-pinned") == "true"
    assert Note.objects.get().is_pinned


def test_failed_events_are_found_and_replayed_from_the_sync_log(
    page, live_server, golfer, monkeypatch
):
    tenant, _profile = golfer
    monkeypatch.setattr(ingest, "_queue", lambda tenant, ids: None)  # no broker in this test
    SyncLogEntry.objects.filter(
        event_id__in=[
            e
            for e in SyncLogEntry.objects.filter(tenant=tenant).values_list("event_id", flat=True)[
                :2
            ]
        ]
    ).update(status=SyncStatus.FAILED, error="ValueError: cannot apply")
    login(page, live_server.url, "anna", PASSWORD)
    page.goto(f"{live_server.url}/admin/customers/synclogentry/?status__exact=FAILED")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    assert "ValueError: cannot apply" in page.locator("#result_list").inner_text()
    page.locator("#action-toggle").check()
    page.select_option("select[name=action]", "replay_selected")
    page.locator("button[name=index], button:has-text('Run')").first.click()
    page.wait_for_load_state("networkidle")
    assert "Replayed 2 failed events" in page.locator("body").inner_text()
    assert not SyncLogEntry.objects.filter(status=SyncStatus.FAILED).exists()
