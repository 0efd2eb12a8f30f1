"""The journey screens in a real browser: the flow drawing, pause and resume, the dry run."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from automation.journeys import journey_activate, journey_create
from customers.models import CustomerProfile
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


def test_entry_filter_is_built_with_the_rule_builder(page, live_server, journey):
    CustomerProfile.objects.filter(tenant=journey.tenant).update(lifecycle_stage="MEMBER")
    login(page, live_server.url, "anna", PASSWORD)
    page.goto(f"{live_server.url}/admin/automation/journey/{journey.pk}/change/")
    builder = page.locator(".field-entry_criteria")
    count = builder.locator("[data-testid=rule-count]")
    expect(count).to_have_text("Add a rule to see how many match.")
    builder.locator("[data-testid=add-rule]").click()
    rule = builder.locator("[data-testid=rule]").first
    rule.locator("[data-testid=rule-field]").select_option(label="Lifecycle stage")
    rule.locator("[data-testid=rule-value]").select_option("MEMBER")
    expect(count).to_have_text("1 customers match")
    page.click("button[name=_continue], input[name=_continue]")
    page.wait_for_load_state("networkidle")
    journey.refresh_from_db()
    assert journey.entry_criteria == {
        "combinator": "AND",
        "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "MEMBER"}],
    }
    # Reopened, the builder draws the saved rule.
    expect(
        page.locator(".field-entry_criteria [data-testid=rule] [data-testid=rule-value]")
    ).to_have_value("MEMBER")
