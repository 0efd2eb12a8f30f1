"""The rule builder's admin endpoints and widget on the segment screen: the live count
(``/admin/marketing/segment/preview/``), the fields it draws from
(``/admin/marketing/segment/rule-fields/``) and the widget's hidden input and errors."""

from __future__ import annotations

import json

import pytest

from customers.models import CustomerProfile
from marketing.models import Segment
from marketing.segments import segment_create
from tests.customers.helpers import person
from tests.factories import ClubFactory, StaffMembershipFactory, UserFactory

pytestmark = pytest.mark.django_db
COUNT = "/admin/marketing/segment/preview/"
FIELDS = "/admin/marketing/segment/rule-fields/"
MEMBERS = {
    "combinator": "AND",
    "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "MEMBER"}],
}


def _member(tenant, email, value_minor=0):
    profile = person(tenant, email=email)
    CustomerProfile.objects.filter(pk=profile.pk).update(
        lifecycle_stage="MEMBER", lifetime_value_minor=value_minor
    )


def _count(client, tenant, criteria):
    body = {"tenant": str(tenant.pk), "criteria": criteria}
    return client.post(COUNT, json.dumps(body), content_type="application/json")


# ----------------------------------------------------------------------------- live count


def test_another_tenants_staff_counts_only_their_own_people(client, tenant_a, tenant_b, staff_b):
    # Given three members at tenant A and one at tenant B
    for i in range(3):
        _member(tenant_a, f"a{i}@example.com")
    _member(tenant_b, "b0@example.com")
    client.force_login(staff_b)

    # When B's staff counts for their tenant, they see B's one member
    response = _count(client, tenant_b, MEMBERS)
    assert response.status_code == 200 and response.json()["count"] == 1
    assert response.json()["sample"] == [str(CustomerProfile.objects.get(tenant=tenant_b))]

    # and naming tenant A gets them nothing of A's
    response = _count(client, tenant_a, MEMBERS)
    assert response.status_code == 400
    assert response.json() == {"errors": {"tenant": ["Choose the tenant first."]}}

    # nor does a rule on one of A's segments
    theirs = segment_create(tenant=tenant_a, data={"name": "A members", "criteria": MEMBERS})
    on_a = {"rules": [{"field": "segment", "operator": "eq", "value": str(theirs.pk)}]}
    response = _count(client, tenant_b, on_a)
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "criteria": ["A rule names a segment that does not exist."]
    }


def test_money_is_counted_in_major_units(client, tenant_a, staff_a):
    _member(tenant_a, "rich@example.com", value_minor=300_000)  # R3,000.00
    _member(tenant_a, "poor@example.com", value_minor=100_000)  # R1,000.00
    client.force_login(staff_a)
    criteria = {"rules": [{"field": "lifetime_value", "operator": "gte", "value": 2500}]}
    assert _count(client, tenant_a, criteria).json()["count"] == 1


def test_bad_criteria_are_a_400_keyed_by_the_rule_path(client, tenant_a, staff_a):
    client.force_login(staff_a)
    bad = {
        "combinator": "AND",
        "rules": [
            {"field": "lifecycle_stage", "operator": "eq", "value": "MEMBER"},
            {
                "combinator": "OR",
                "rules": [
                    {"field": "salary", "operator": "eq", "value": 1},
                    {"field": "engagement_score", "operator": "gte", "value": 2.5},
                ],
            },
        ],
    }
    response = _count(client, tenant_a, bad)
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "criteria.rules[1].rules[0].field": ["Unknown field 'salary'."],
        "criteria.rules[1].rules[1].value": ["Expected a whole number."],
    }
    response = client.post(COUNT, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"errors": {"criteria": ["Not valid JSON."]}}
    assert client.get(COUNT).status_code == 405
    assert not Segment.objects.exists()


def test_people_who_are_not_staff_are_refused(client, tenant_a):
    _member(tenant_a, "a0@example.com")
    # Anonymous: sent to the login page, nothing counted
    response = _count(client, tenant_a, MEMBERS)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    # A logged-in user who is not staff (even with a membership): the same
    outsider = StaffMembershipFactory(
        tenant=tenant_a, user=UserFactory(username="olga", is_staff=False)
    ).user
    client.force_login(outsider)
    response = _count(client, tenant_a, MEMBERS)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert client.get(f"{FIELDS}?tenant={tenant_a.pk}").status_code == 302
    # Staff of no tenant: no tenant to count for
    client.force_login(UserFactory(username="nobody"))
    response = _count(client, tenant_a, MEMBERS)
    assert response.status_code == 400 and "tenant" in response.json()["errors"]


# ----------------------------------------------------------------------------- fields


def test_fields_come_typed_with_the_tenants_currency_clubs_and_segments(
    client, tenant_a, tenant_b, staff_a
):
    club = ClubFactory(tenant=tenant_a, name="Links A Country Club")
    ClubFactory(tenant=tenant_b, name="Parkland B Golf Club")
    ours = segment_create(tenant=tenant_a, data={"name": "Members", "criteria": MEMBERS})
    segment_create(tenant=tenant_b, data={"name": "Theirs", "criteria": MEMBERS})
    client.force_login(staff_a)

    body = client.get(f"{FIELDS}?tenant={tenant_a.pk}").json()

    fields = {f["field"]: f for f in body["fields"]}
    assert fields["lifetime_value"]["type"] == "money"
    assert fields["lifecycle_stage"]["group"] == "Profile"
    assert "MEMBER" in fields["lifecycle_stage"]["choices"]
    assert fields["activity_count"]["params"][0] == {
        "name": "days",
        "type": "number",
        "label": "In the last (days)",
        "required": True,
    }
    assert body["currency"] == "ZAR"
    assert body["options"] == {
        "home_club": [{"value": str(club.pk), "label": "Links A Country Club"}],
        "segment": [{"value": str(ours.pk), "label": "Members"}],
    }


def test_fields_of_another_tenant_are_404_and_without_a_tenant_carry_no_choices(
    client, tenant_a, tenant_b, staff_a
):
    client.force_login(staff_a)
    assert client.get(f"{FIELDS}?tenant={tenant_b.pk}").status_code == 404
    assert client.get(f"{FIELDS}?tenant=not-a-uuid").status_code == 404
    body = client.get(FIELDS).json()
    assert body["currency"] == "" and body["options"] == {}
    assert any(f["field"] == "tags" for f in body["fields"])


# ----------------------------------------------------------------------------- widget


def _config(page: str) -> dict:
    start = page.index('<script id="id_criteria-rule-builder" type="application/json">')
    start = page.index(">", start) + 1
    return json.loads(page[start : page.index("</script>", start)])


def test_the_widget_keeps_the_criteria_in_a_hidden_input_and_errors_by_path(
    client, tenant_a, staff_a
):
    client.force_login(staff_a)
    segment = segment_create(tenant=tenant_a, data={"name": "Members", "criteria": MEMBERS})
    page = client.get(f"/admin/marketing/segment/{segment.pk}/change/").content.decode()
    assert '<input type="hidden" name="criteria"' in page
    assert "crm/rule_builder.js" in page and "crm/rule_builder.css" in page
    config = _config(page)
    assert config["tenant"] == str(tenant_a.pk)  # the tenant is read-only here
    assert config["count_url"] == COUNT and config["fields_url"] == FIELDS
    assert config["max_depth"] == 5 and config["errors"] == {}

    bad = {"rules": [{"field": "lifecycle_stage", "operator": "gt", "value": "MEMBER"}]}
    response = client.post(
        "/admin/marketing/segment/add/",
        {
            "tenant": str(tenant_a.pk),
            "name": "Bad",
            "description": "",
            "type": "DYNAMIC",
            "criteria": json.dumps(bad),
            "refresh_frequency": "DAILY",
        },
    )
    config = _config(response.content.decode())
    assert list(config["errors"]) == ["criteria.rules[0].operator"]
    assert config["errors"]["criteria.rules[0].operator"][0].startswith("'gt' does not apply")
    assert not Segment.objects.filter(name="Bad").exists()
