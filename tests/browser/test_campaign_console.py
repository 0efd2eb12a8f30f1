"""The campaign screens in a real browser: audience, schedule, results."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from marketing.segments import segment_refresh
from tests.browser.helpers import login
from tests.factories import PASSWORD, StaffMembershipFactory, TenantFactory, UserFactory
from tests.marketing.builders import make_campaign, make_member


@pytest.fixture
def campaign(transactional_db):
    tenant = TenantFactory(slug="links-a", name="Links A Golf")
    StaffMembershipFactory(tenant=tenant, user=UserFactory(username="anna"))
    for i in range(3):
        make_member(tenant, f"p{i}@example.com", email_opt_in=i != 2)
    campaign = make_campaign(tenant, scheduled_at=timezone.now() + timedelta(days=1))
    segment_refresh(segment=campaign.segment)
    return campaign


def test_audience_schedule_and_results(page, live_server, campaign):
    login(page, live_server.url, "anna", PASSWORD)
    page.goto(f"{live_server.url}/admin/marketing/campaign/{campaign.pk}/change/")
    expect(page.locator("[data-testid=reachable-email]")).to_have_text("2")
    page.click("[data-testid=action-schedule]")
    expect(page.locator("[data-testid=campaign-status]")).to_have_text("Scheduled")
    page.click("[data-testid=action-pause]")
    expect(page.locator("[data-testid=campaign-status]")).to_have_text("Paused")
    page.click("[data-testid=stats-link]")
    expect(page.locator("[data-testid=funnel-targeted] [data-testid=funnel-value]")).to_have_text(
        "0"
    )
