"""The journey screens in a real browser: the flow drawing, pause and resume, the dry run."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from automation.journeys import journey_activate, journey_create
from marketing.models import MessageTemplate
from tests.browser.helpers import login
from tests.customers.helpers import person
from tests.factories import PASSWORD, StaffMembershipFactory, TenantFactory, UserFactory


@pytest.fixture
def journey(transactional_db):
    tenant = TenantFactory(slug="links-a", name="Links A Golf")
    StaffMembershipFactory(tenant=tenant, user=UserFactory(username="anna"))
    person(tenant, email="ann@example.com")
    template = MessageTemplate.objects.create(
        tenant=tenant, name="Hello", channel="email", subject="Hi", html_body="<p>Hi</p>"
    )
    steps = [
        {
            "key": "send",
            "type": "SEND",
            "config": {"channel": "email", "template_id": str(template.pk)},
            "next": ["end"],
        },
        {"key": "end", "type": "END"},
    ]
    created = journey_create(
        tenant=tenant, data={"name": "Welcome", "trigger": {"type": "manual"}}, steps=steps
    )
    return journey_activate(journey=created)


def test_flow_pause_resume_and_dry_run(page, live_server, journey):
    login(page, live_server.url, "anna", PASSWORD)
    page.goto(f"{live_server.url}/admin/automation/journey/{journey.pk}/change/")
    expect(page.locator("[data-testid=journey-flow] [data-step=send]")).to_contain_text("now 0")
    page.click("[data-testid=action-pause]")
    expect(page.locator("[data-testid=journey-status]")).to_have_text("Paused")
    page.click("[data-testid=action-resume]")
    expect(page.locator("[data-testid=journey-status]")).to_have_text("Active")
    page.fill("#dry-run-customer", "ann@example.com")
    page.click("[data-testid=dry-run]")
    expect(page.locator("[data-testid=dry-run-path]")).to_contain_text(
        "would be skipped: no consent"
    )
