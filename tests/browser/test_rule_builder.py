"""The visual rule builder on the segment screen, in a real browser: a two-group segment
built with clicks and typing only, the live count, save, members; a rule's error shown on
the rule; the raw JSON view; keyboard focus order through a rule.

Screenshots of the key screens go to var/screenshots/ (gitignored; an artifact of the run,
RULE_BUILDER_SCREENSHOTS overrides the folder)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from customers.models import CustomerProfile
from marketing.models import Segment
from marketing.segments import segment_create
from tests.customers.helpers import person
from tests.factories import (
    PASSWORD,
    ClubFactory,
    StaffMembershipFactory,
    TenantFactory,
    UserFactory,
)

from .helpers import login

SHOTS = Path(
    os.environ.get("RULE_BUILDER_SCREENSHOTS") or Path(settings.BASE_DIR) / "var" / "screenshots"
)


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"rule-builder-{name}.png"), full_page=True)


@pytest.fixture
def tenant(transactional_db):
    """Members with and without the "competitions" tag and a lifetime value; one visitor."""
    tenant = TenantFactory(slug="links-a", name="Links A Golf")
    StaffMembershipFactory(tenant=tenant, user=UserFactory(username="anna"))
    people = [
        ("comp@example.com", "MEMBER", ["competitions"], 0),
        ("rich@example.com", "MEMBER", [], 300_000),  # R3,000.00
        ("plain@example.com", "MEMBER", [], 100_000),  # R1,000.00
        ("visitor@example.com", "VISITOR", ["competitions"], 900_000),
    ]
    for email, stage, tags, value in people:
        profile = person(tenant, email=email)
        CustomerProfile.objects.filter(pk=profile.pk).update(
            lifecycle_stage=stage, tags=tags, lifetime_value_minor=value
        )
    return tenant


def _rule(page, n: int):
    return page.locator("[data-testid=rule]").nth(n)


def _open_new_segment(page, live_server, tenant) -> None:
    login(page, live_server.url, "anna", PASSWORD)
    page.goto(f"{live_server.url}/admin/marketing/segment/add/")
    page.select_option("select[name=tenant]", str(tenant.pk))
    page.fill("input[name=name]", "Competitive or valuable members")


def test_build_a_two_group_segment_count_save_and_see_members(page, live_server, tenant):
    _open_new_segment(page, live_server, tenant)
    count = page.locator("[data-testid=rule-count]")
    expect(count).to_have_text("Add a rule to see how many match.")

    # Group 1 (all of): lifecycle stage is MEMBER
    page.click("[data-testid=add-rule]")
    _rule(page, 0).locator("[data-testid=rule-field]").select_option(label="Lifecycle stage")
    expect(_rule(page, 0).locator("[data-testid=rule-operator]")).to_have_value("eq")
    _rule(page, 0).locator("[data-testid=rule-value]").select_option("MEMBER")
    expect(count).to_have_text("3 customers match")

    # Group 2 (any of): has the tag "competitions", or lifetime value at least R2,500
    page.locator("[data-testid=add-group]").first.click()
    group = page.locator("[data-testid=rule-group]").nth(1)
    expect(group.locator("select").first).to_have_value("OR")
    group.locator("[data-testid=rule-field]").select_option(label="Tags")
    group.locator("[data-testid=rule-operator]").select_option(label="has the tag")
    group.locator("[data-testid=rule-value]").fill("competitions")
    expect(count).to_have_text("1 customers match")
    group.locator("[data-testid=add-rule]").click()
    money = group.locator("[data-testid=rule]").nth(1)
    money.locator("[data-testid=rule-field]").select_option(label="Lifetime value")
    money.locator("[data-testid=rule-operator]").select_option(label="is at least")
    expect(money.get_by_label("Amount in ZAR")).to_be_visible()
    money.locator("[data-testid=rule-value]").fill("2500")
    expect(count).to_have_text("2 customers match")
    _shot(page, "two-groups")

    # The raw JSON follows the builder (money in major units, as the engine expects).
    page.click("[data-testid=rule-json-toggle]")
    shown = json.loads(page.locator("[data-testid=rule-json]").input_value())
    assert shown["rules"][1]["combinator"] == "OR"
    assert shown["rules"][1]["rules"][1]["value"] == 2500

    page.click("button[name=_continue], input[name=_continue]")
    page.wait_for_load_state("networkidle")
    segment = Segment.objects.get()
    assert segment.criteria == {
        "combinator": "AND",
        "rules": [
            {"field": "lifecycle_stage", "operator": "eq", "value": "MEMBER"},
            {
                "combinator": "OR",
                "rules": [
                    {"field": "tags", "operator": "contains", "value": "competitions"},
                    {"field": "lifetime_value", "operator": "gte", "value": 2500},
                ],
            },
        ],
    }
    # The saved segment opens in the builder again, with its count.
    expect(page.locator("[data-testid=rule]")).to_have_count(3)
    expect(page.locator("[data-testid=rule-count]")).to_have_text("2 customers match")
    page.click("[data-testid=refresh-now]")
    page.wait_for_load_state("networkidle")
    page.click("[data-testid=members-link]")
    expect(page.locator("[data-testid=member]")).to_have_count(2)
    listed = page.locator("[data-testid=segment-members]").inner_text()
    assert "comp@example.com" in listed and "rich@example.com" in listed
    assert "plain@example.com" not in listed and "visitor@example.com" not in listed
    _shot(page, "members")


def test_errors_show_on_the_rule_they_belong_to(page, live_server, tenant):
    _open_new_segment(page, live_server, tenant)
    page.click("[data-testid=add-rule]")
    _rule(page, 0).locator("[data-testid=rule-field]").select_option(label="Lifecycle stage")
    _rule(page, 0).locator("[data-testid=rule-value]").select_option("MEMBER")
    page.locator("[data-testid=add-group]").first.click()
    inner = page.locator("[data-testid=rule-group]").nth(1).locator("[data-testid=rule]")
    inner.locator("[data-testid=rule-field]").select_option(label="Engagement score")
    inner.locator("[data-testid=rule-operator]").select_option(label="is at least")
    inner.locator("[data-testid=rule-value]").fill("2.5")  # whole numbers only

    count = page.locator("[data-testid=rule-count]")
    expect(count).to_have_text("The rules have errors: see the marked rules.")
    expect(inner.locator("[data-testid=rule-errors]")).to_have_text("Expected a whole number.")
    expect(inner.locator("[data-testid=rule-value]")).to_have_attribute("aria-invalid", "true")
    expect(_rule(page, 0).locator("[data-testid=rule-errors]")).to_be_empty()
    _shot(page, "rule-error")

    # Saving anyway: the server refuses and the builder shows the message on the same rule.
    page.click("button[name=_continue], input[name=_continue]")
    page.wait_for_load_state("networkidle")
    assert not Segment.objects.exists()
    inner = page.locator("[data-testid=rule-group]").nth(1).locator("[data-testid=rule]")
    expect(inner.locator("[data-testid=rule-errors]")).to_contain_text("Expected a whole number.")

    inner.locator("[data-testid=rule-value]").fill("2")
    expect(count).to_have_text("0 customers match")
    expect(inner.locator("[data-testid=rule-errors]")).to_be_empty()


def test_raw_json_round_trips_and_unknown_fields_are_named(page, live_server, tenant):
    _open_new_segment(page, live_server, tenant)
    page.click("[data-testid=rule-json-toggle]")
    raw = page.locator("[data-testid=rule-json]")
    raw.fill('{"combinator": "AND", "rules": [{"field": "salary", "operator": "eq", "value": 1}]}')
    page.click("[data-testid=rule-json-apply]")
    expect(_rule(page, 0).locator("[data-testid=rule-errors]")).to_have_text(
        "Unknown field 'salary'."
    )
    raw.fill(
        '{"combinator": "OR", "rules": [{"field": "last_activity_at", "operator": "lt",'
        ' "value": {"days_ago": 30}}, {"field": "lifecycle_stage", "operator": "eq",'
        ' "value": "VISITOR"}]}'
    )
    page.click("[data-testid=rule-json-apply]")
    expect(page.locator("[data-testid=rule]")).to_have_count(2)
    expect(_rule(page, 0).locator("[data-testid=rule-date-mode]")).to_have_value("days_ago")
    expect(_rule(page, 0).locator("[data-testid=rule-value]")).to_have_value("30")
    # Nobody has an activity; the visitor matches the second rule.
    expect(page.locator("[data-testid=rule-count]")).to_have_text("1 customers match")
    raw.fill("{not json")
    page.click("[data-testid=rule-json-apply]")
    expect(page.locator(".rb-raw [role=alert]")).to_contain_text("Not valid JSON")
    expect(page.locator("[data-testid=rule]")).to_have_count(2)  # the builder kept its rules


def test_keyboard_tabs_through_a_rules_controls(page, live_server, tenant):
    _open_new_segment(page, live_server, tenant)
    page.focus("[data-testid=add-rule]")
    page.keyboard.press("Enter")  # adds a rule and moves the focus to its field
    field = _rule(page, 0).locator("[data-testid=rule-field]")
    expect(field).to_be_focused()
    expect(field).to_have_accessible_name("Field")
    field.select_option(label="Handicap index")  # what arrow keys in the open list do
    expect(field).to_be_focused()  # redrawing keeps the focus
    page.keyboard.press("Tab")
    operator = _rule(page, 0).locator("[data-testid=rule-operator]")
    expect(operator).to_be_focused()
    expect(operator).to_have_accessible_name("Operator")
    operator.select_option(label="is less than")
    expect(operator).to_be_focused()
    page.keyboard.press("Tab")
    value = _rule(page, 0).locator("[data-testid=rule-value]")
    expect(value).to_be_focused()
    expect(value).to_have_accessible_name("Value")
    page.keyboard.type("12.5")
    page.keyboard.press("Tab")
    expect(_rule(page, 0).locator("[data-testid=remove-rule]")).to_be_focused()
    expect(page.locator("[data-testid=rule-count]")).to_have_text("0 customers match")
    _shot(page, "keyboard")
    page.keyboard.press("Enter")  # removes the rule; the focus goes back to "+ Rule"
    expect(page.locator("[data-testid=rule]")).to_have_count(0)
    expect(page.locator("[data-testid=add-rule]").first).to_be_focused()


def test_id_fields_offer_names_and_computed_fields_ask_for_their_params(page, live_server, tenant):
    ClubFactory(tenant=tenant, name="Links A Country Club")
    members = {"rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "MEMBER"}]}
    segment_create(tenant=tenant, data={"name": "All members", "criteria": members})
    _open_new_segment(page, live_server, tenant)
    page.click("[data-testid=add-rule]")
    rule = _rule(page, 0)
    rule.locator("[data-testid=rule-field]").select_option(label="Home club")
    expect(rule.locator("[data-testid=rule-value] option")).to_have_text(
        ["Choose…", "Links A Country Club"]
    )
    rule.locator("[data-testid=rule-field]").select_option(
        label="Member of segment (eq: of this one; in: of any; neq: not of this one)"
    )
    rule.locator("[data-testid=rule-value]").select_option(label="All members")
    count = page.locator("[data-testid=rule-count]")
    expect(count).to_have_text("0 customers match")  # not refreshed yet: no members

    rule.locator("[data-testid=rule-field]").select_option(
        label="Activities in the last N days (optionally of a type or category)"
    )
    expect(rule.get_by_label("In the last (days)")).to_have_value("30")
    rule.locator("[data-testid=rule-value]").fill("0")
    expect(count).to_have_text("4 customers match")  # nobody did anything in 30 days
    rule.get_by_label("In the last (days)").fill("0")
    expect(rule.locator("[data-testid=rule-errors]")).to_contain_text(
        "days must be a whole number from 1 to 3650."
    )
