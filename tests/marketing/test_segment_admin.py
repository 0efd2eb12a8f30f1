"""The segment screens of the staff console."""

from __future__ import annotations

import json

import pytest

from customers.models import CustomerProfile
from marketing.models import Segment
from marketing.segments import segment_create, segment_refresh
from tests.customers.helpers import person

pytestmark = pytest.mark.django_db
MEMBERS = {
    "combinator": "AND",
    "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "MEMBER"}],
}
ADD = "/admin/marketing/segment/add/"


@pytest.fixture
def console(client, staff_a):
    client.force_login(staff_a)
    return client


def _form(tenant, **extra):
    return {
        "tenant": str(tenant.pk),
        "name": "Members",
        "description": "",
        "type": "DYNAMIC",
        "criteria": json.dumps(MEMBERS),
        "refresh_frequency": "DAILY",
        **extra,
    }


def _members(tenant, n):
    for i in range(n):
        p = person(tenant, email=f"m{i}@example.com")
        CustomerProfile.objects.filter(pk=p.pk).update(lifecycle_stage="MEMBER")


def test_the_editor_refuses_bad_rules_with_their_path(console, tenant_a):
    bad = {
        "combinator": "AND",
        "rules": [{"field": "lifecycle_stage", "operator": "gt", "value": "MEMBER"}],
    }
    response = console.post(ADD, _form(tenant_a, criteria=json.dumps(bad)))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["criteria"]
    assert any(e.startswith("criteria.rules[0].operator:") for e in errors)
    assert not Segment.objects.exists()
    response = console.post(ADD, _form(tenant_a, criteria="{not json"))
    assert "criteria" in response.context["adminform"].form.errors


def test_the_editor_saves_valid_rules_and_schedules_the_refresh(console, tenant_a):
    response = console.post(ADD, _form(tenant_a))
    assert response.status_code == 302
    segment = Segment.objects.get()
    assert segment.criteria == MEMBERS and segment.next_refresh_at is not None


def test_live_preview_counts_without_saving(console, tenant_a, tenant_b):
    _members(tenant_a, 3)
    url = "/admin/marketing/segment/preview/"
    body = {"tenant": str(tenant_a.pk), "criteria": MEMBERS}
    response = console.post(url, json.dumps(body), content_type="application/json")
    assert response.json()["count"] == 3
    bad = {"tenant": str(tenant_a.pk), "criteria": {"rules": [{"field": "x"}]}}
    response = console.post(url, json.dumps(bad), content_type="application/json")
    assert response.status_code == 400 and "criteria.rules[0].field" in response.json()["errors"]
    theirs = {"tenant": str(tenant_b.pk), "criteria": MEMBERS}
    response = console.post(url, json.dumps(theirs), content_type="application/json")
    assert response.status_code == 400 and "tenant" in response.json()["errors"]
    assert not Segment.objects.exists()


def test_refresh_button_members_page_and_slow_warning(console, tenant_a):
    _members(tenant_a, 3)
    segment = segment_create(tenant=tenant_a, data={"name": "Members", "criteria": MEMBERS})
    response = console.post(f"/admin/marketing/segment/{segment.pk}/refresh/", follow=True)
    assert "Refreshed: 3 members (+3, -0)" in response.content.decode()
    members = console.get(f"/admin/marketing/segment/{segment.pk}/members/")
    assert len(members.context["rows"]) == 3
    assert "m0@example.com" in members.content.decode()
    Segment.objects.filter(pk=segment.pk).update(last_refresh_ms=25_000)
    page = console.get(f"/admin/marketing/segment/{segment.pk}/change/").content.decode()
    assert "slow: simplify the rules" in page
    listing = console.get("/admin/marketing/segment/").content.decode()
    assert "25.0 s (slow)" in listing


def test_members_pages_walk_the_key_without_repeats_or_gaps(console, tenant_a, monkeypatch):
    monkeypatch.setattr("marketing.admin.MEMBERS_PAGE", 2)
    _members(tenant_a, 5)
    segment = segment_create(tenant=tenant_a, data={"name": "Members", "criteria": MEMBERS})
    segment_refresh(segment=segment)
    url = f"/admin/marketing/segment/{segment.pk}/members/"
    seen, after, pages = [], None, 0
    while True:
        response = console.get(url, {"after": after} if after else {})
        assert response.status_code == 200
        seen += [row.customer_id for row in response.context["rows"]]
        pages += 1
        after = response.context["next_after"]
        if after is None:
            break
        assert f"?after={after}" in response.content.decode()
    assert pages == 3 and len(seen) == 5 and seen == sorted(seen)
    everyone = CustomerProfile.objects.filter(tenant=tenant_a, lifecycle_stage="MEMBER")
    assert set(seen) == set(everyone.values_list("pk", flat=True))
    # A cursor that is not a customer id starts from the first page, never a 500.
    response = console.get(url, {"after": "12"})
    assert response.status_code == 200 and len(response.context["rows"]) == 2


def test_refresh_action_on_the_list(console, tenant_a):
    _members(tenant_a, 2)
    segment = segment_create(tenant=tenant_a, data={"name": "Members", "criteria": MEMBERS})
    response = console.post(
        "/admin/marketing/segment/",
        {"action": "refresh_selected", "_selected_action": [str(segment.pk)]},
        follow=True,
    )
    assert "Members: 2 members (+2, -0)" in response.content.decode()


def test_another_tenants_segment_is_not_reachable(console, tenant_b):
    theirs = segment_create(tenant=tenant_b, data={"name": "Theirs", "criteria": MEMBERS})
    assert console.get(f"/admin/marketing/segment/{theirs.pk}/members/").status_code == 403
    assert console.post(f"/admin/marketing/segment/{theirs.pk}/refresh/").status_code == 403
    assert "Theirs" not in console.get("/admin/marketing/segment/").content.decode()
    segment_refresh(segment=theirs)


def test_csv_upload_adds_people_and_returns_the_unmatched_rows(console, tenant_a):
    from django.core.files.uploadedfile import SimpleUploadedFile

    ann = person(tenant_a, email="ann@example.com")
    segment = segment_create(tenant=tenant_a, data={"name": "VIPs", "type": "STATIC"})
    url = f"/admin/marketing/segment/{segment.pk}/import/"
    upload = SimpleUploadedFile("v.csv", b"email,note\nann@example.com,a\nghost@example.com,g\n")
    response = console.post(url, {"file": upload})
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    assert response.content.decode().splitlines() == [
        "email,note,error",
        "ghost@example.com,g,No customer with this email.",
    ]
    assert list(segment.memberships.values_list("customer_id", flat=True)) == [ann.pk]
    clean = SimpleUploadedFile("v.csv", b"email\nann@example.com\n")
    response = console.post(url, {"file": clean}, follow=True)
    assert "1 rows: 1 matched, 0 added, 0 matched nobody." in response.content.decode()
    bad = SimpleUploadedFile("v.csv", b"name\nAnn\n")
    response = console.post(url, {"file": bad}, follow=True)
    assert "needs an id, email or phone column" in response.content.decode()


def test_the_admins_error_file_does_not_hand_spreadsheets_formulas(console, tenant_a):
    from django.core.files.uploadedfile import SimpleUploadedFile

    segment = segment_create(tenant=tenant_a, data={"name": "VIPs", "type": "STATIC"})
    upload = SimpleUploadedFile("v.csv", b"email,note\nghost@example.com,=1+cmd|' /C calc'!A0\n")
    response = console.post(f"/admin/marketing/segment/{segment.pk}/import/", {"file": upload})
    assert response["Content-Type"].startswith("text/csv")
    assert response.content.decode().splitlines() == [
        "email,note,error",
        "ghost@example.com,'=1+cmd|' /C calc'!A0,No customer with this email.",
    ]
