"""The segment editor in a real browser: live count, save, refresh, members."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from customers.models import CustomerProfile
from tests.customers.helpers import person
from tests.factories import StaffMembershipFactory, TenantFactory, UserFactory

from .test_admin_console import PASSWORD, _login


@pytest.fixture
def tenant(transactional_db):
    tenant = TenantFactory(slug="links-a", name="Links A Golf")
    StaffMembershipFactory(tenant=tenant, user=UserFactory(username="anna"))
    for i, stage in enumerate(["MEMBER", "MEMBER", "VISITOR"]):
        profile = person(tenant, email=f"p{i}@example.com")
        CustomerProfile.objects.filter(pk=profile.pk).update(lifecycle_stage=stage)
    return tenant


def test_build_preview_save_refresh_and_list_members(page, live_server, tenant):
    _login(page, live_server.url, "anna", PASSWORD)
    page.goto(f"{live_server.url}/admin/marketing/segment/add/")
    assert page.locator("select[name=tenant]").count() == 0  # staff of one tenant never pick it
    page.fill("input[name=name]", "Members")
    criteria = {
        "combinator": "AND",
        "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "MEMBER"}],
    }
    page.fill("textarea[name=criteria]", json.dumps(criteria))

    page.click("#preview-count")
    expect(page.locator("[data-testid=preview-result]")).to_have_text("2 customers match")

    page.fill("textarea[name=criteria]", '{"rules": [{"field": "salary"}]}')
    page.click("#preview-count")
    expect(page.locator("[data-testid=preview-result]")).to_contain_text("criteria.rules[0].field")

    page.fill("textarea[name=criteria]", json.dumps(criteria))
    page.click("button[name=_continue], input[name=_continue]")
    page.wait_for_load_state("networkidle")
    page.click("[data-testid=refresh-now]")
    page.wait_for_load_state("networkidle")
    assert "Refreshed: 2 members (+2, -0)" in page.locator("body").inner_text()

    page.click("[data-testid=members-link]")
    expect(page.locator("[data-testid=member]")).to_have_count(2)
    assert "p0@example.com" in page.locator("[data-testid=segment-members]").inner_text()
