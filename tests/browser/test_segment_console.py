"""The segment editor in a real browser: live count, save, refresh, members."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from customers.models import CustomerProfile
from tests.browser.helpers import login
from tests.customers.helpers import person
from tests.factories import PASSWORD, StaffMembershipFactory, TenantFactory, UserFactory


@pytest.fixture
def tenant(transactional_db):
    tenant = TenantFactory(slug="links-a", name="Links A Golf")
    StaffMembershipFactory(tenant=tenant, user=UserFactory(username="anna"))
    for i, stage in enumerate(["MEMBER", "MEMBER", "VISITOR"]):
        profile = person(tenant, email=f"p{i}@example.com")
        CustomerProfile.objects.filter(pk=profile.pk).update(lifecycle_stage=stage)
    return tenant


def test_build_preview_save_refresh_and_list_members(page, live_server, tenant):
    login(page, live_server.url, "anna", PASSWORD)
    page.goto(f"{live_server.url}/admin/marketing/segment/add/")
    assert page.locator("select[name=tenant]").count() == 0  # staff of one tenant never pick it
    page.fill("input[name=name]", "Members")
    criteria = {
        "combinator": "AND",
        "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "MEMBER"}],
    }
    # Power users type the rules as JSON; the builder's live count follows.
    page.click("[data-testid=rule-json-toggle]")
    page.fill("[data-testid=rule-json]", json.dumps(criteria))
    page.click("[data-testid=rule-json-apply]")
    expect(page.locator("[data-testid=rule-count]")).to_have_text("2 customers match")

    page.fill("[data-testid=rule-json]", '{"rules": [{"field": "salary"}]}')
    page.click("[data-testid=rule-json-apply]")
    error = page.locator("[data-testid=rule] [data-testid=rule-errors] li")
    expect(error).to_have_attribute("data-error-path", "criteria.rules[0].field")
    expect(error).to_have_text("Unknown field 'salary'.")

    page.fill("[data-testid=rule-json]", json.dumps(criteria))
    page.click("[data-testid=rule-json-apply]")
    expect(page.locator("[data-testid=rule-count]")).to_have_text("2 customers match")
    page.click("button[name=_continue], input[name=_continue]")
    page.wait_for_load_state("networkidle")
    page.click("[data-testid=refresh-now]")
    page.wait_for_load_state("networkidle")
    assert "Refreshed: 2 members (+2, -0)" in page.locator("body").inner_text()

    page.click("[data-testid=members-link]")
    expect(page.locator("[data-testid=member]")).to_have_count(2)
    assert "p0@example.com" in page.locator("[data-testid=segment-members]").inner_text()
