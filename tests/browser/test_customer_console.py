"""The console a club marketer would choose, in a real browser: the customer page (money in
the tenant's currency, consent chips, the timeline before the raw fields), add forms without
a tenant picker for staff of one tenant, and the demo club's lists with data. Screenshots go
to var/screenshots/ (ignored by git) for a person to look at."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from customers.models import Activity, CustomerProfile
from tests.customers.helpers import person
from tests.factories import (
    PASSWORD,
    ClubFactory,
    StaffMembershipFactory,
    TenantFactory,
    UserFactory,
)

from .helpers import login

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def club(transactional_db):
    tenant = TenantFactory(slug="links-a", name="Links A Golf")
    ClubFactory(tenant=tenant, name="Links A Country Club")
    StaffMembershipFactory(tenant=tenant, user=UserFactory(username="anna"))
    return tenant


def test_customer_page_shows_money_consent_and_the_timeline_first(page, live_server, club):
    profile = person(club, email="thabo@example.co.za")
    now = timezone.now()
    CustomerProfile.objects.filter(pk=profile.pk).update(
        first_name="Thabo",
        last_name="Nkosi",
        lifetime_value_minor=4_785_916,
        currency="ZAR",
        membership_type="Full",
        membership_status="ACTIVE",
        handicap_index=Decimal("12.4"),
        email_opt_in=True,
        email_consent_at=now - timedelta(days=40),
        email_consent_source="mca_v1",
        sms_consent_at=now - timedelta(days=2),
        sms_consent_source="unsubscribed",
    )
    Activity.objects.bulk_create(
        Activity(
            tenant=club,
            customer=profile,
            type="teetime.round.completed",
            category="golf",
            title=f"Played 18 holes at Links A, {30 + i} points",
            source_service="teetime",
            source_event_id=f"r{i}",
            occurred_at=now - timedelta(days=i + 1),
        )
        for i in range(5)
    )
    login(page, live_server.url, "anna", PASSWORD)

    page.goto(f"{live_server.url}/admin/customers/customerprofile/{profile.pk}/change/")

    assert page.locator("[data-testid=lifetime-value]").inner_text() == "R 47,859.16"
    assert "Thabo Nkosi" in page.locator("[data-testid=customer-name]").inner_text()
    chips = page.locator("[data-testid=consent-chip]")
    assert chips.count() == 4
    email = page.locator("[data-testid=consent-chip][data-channel=email]")
    assert email.get_attribute("data-opt-in") == "true"
    assert "mca_v1" in email.inner_text()
    sms = page.locator("[data-testid=consent-chip][data-channel=sms]")
    assert "opted out" in sms.inner_text()
    assert page.locator("[data-testid=activity]").count() == 5
    timeline_top = page.locator("[data-testid=timeline]").bounding_box()["y"]
    form_top = page.locator("#customerprofile_form").bounding_box()["y"]
    header_top = page.locator("[data-testid=customer-header]").bounding_box()["y"]
    assert header_top < timeline_top < form_top
    _shot(page, "customer-360")


ADD_FORMS = {
    "club": "/admin/crm/club/add/",
    "template": "/admin/marketing/messagetemplate/add/",
    "segment": "/admin/marketing/segment/add/",
    "campaign": "/admin/marketing/campaign/add/",
}


def test_one_tenant_staff_never_see_a_tenant_picker(page, live_server, club):
    login(page, live_server.url, "anna", PASSWORD)

    for name, url in ADD_FORMS.items():
        page.goto(f"{live_server.url}{url}")
        assert page.locator("select[name=tenant]").count() == 0, name
        assert page.locator("input[name=tenant]").get_attribute("value") == str(club.pk), name
        assert not page.get_by_text("Tenant", exact=True).is_visible(), name
        _shot(page, f"add-{name}-one-tenant")


def test_one_tenant_staff_add_a_club_without_picking(page, live_server, club):
    login(page, live_server.url, "anna", PASSWORD)

    page.goto(f"{live_server.url}/admin/crm/club/add/")
    page.fill("input[name=name]", "Links A Academy")
    page.fill("input[name=timezone]", "Africa/Johannesburg")
    page.click("button[name=_save], input[name=_save], button[type=submit]:has-text('Save')")
    page.wait_for_load_state("networkidle")

    from crm.models import Club

    assert Club.objects.get(name="Links A Academy").tenant_id == club.pk


def test_the_demo_club_looks_alive(page, live_server, club):
    call_command(
        "generate_demo_data", "--tenant", club.slug, "--customers", "150", stdout=StringIO()
    )
    call_command("demo_club", "--tenant", club.slug, stdout=StringIO())
    login(page, live_server.url, "anna", PASSWORD)

    page.goto(f"{live_server.url}/admin/marketing/campaign/")
    campaigns = page.locator("#result_list").inner_text()
    assert "Autumn Open" in campaigns and "%" in campaigns
    _shot(page, "demo-campaigns")
    page.goto(f"{live_server.url}/admin/marketing/segment/")
    assert "Active members" in page.locator("#result_list").inner_text()
    _shot(page, "demo-segments")
    page.goto(f"{live_server.url}/admin/customers/customerprofile/?lifecycle_stage__exact=MEMBER")
    _shot(page, "demo-customers")
    page.locator("#result_list tbody tr a").first.click()
    page.wait_for_load_state("networkidle")
    assert page.locator("[data-testid=activity]").count() > 0
    _shot(page, "demo-customer-360")
