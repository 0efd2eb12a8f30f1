"""Staff console: customer list and search, customer page, merge-suggestion review."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.identity import IdentityHints
from customers.models import CustomerProfile, MergeSuggestion, ProfileStatus, SuggestionStatus
from customers.services import identity_resolve

pytestmark = pytest.mark.django_db


def _person(tenant, **raw):
    hints = IdentityHints.parse(raw, phone_region=tenant.default_phone_region)
    profile = identity_resolve(tenant=tenant, hints=hints).profile
    return profile


@pytest.fixture
def console(client, staff_a):
    client.force_login(staff_a)
    return client


def test_list_shows_only_the_staff_tenants_customers(console, tenant_a, tenant_b):
    _person(tenant_a, email="thabo@example.co.za")
    _person(tenant_b, email="oliver@example.co.uk")

    page = console.get("/admin/customers/customerprofile/").content.decode()

    assert "thabo@example.co.za" in page
    assert "oliver@example.co.uk" not in page


def test_list_never_counts_the_table(console, tenant_a):
    for i in range(3):
        _person(tenant_a, email=f"p{i}@example.com")

    with CaptureQueriesContext(connection) as queries:
        response = console.get("/admin/customers/customerprofile/")

    assert response.status_code == 200
    assert not [
        q for q in queries if "COUNT(" in q["sql"].upper() and "customerprofile" in q["sql"]
    ]


@pytest.mark.parametrize(
    ("term", "found"),
    [
        ("THABO@Example.co.za ", True),
        ("082 123 4567", True),
        ("+27 82 123 4567", True),
        ("thab", True),  # the start of the first name
        ("example", False),  # the middle of an email is not a name, nor an email
        ("Mokoena", True),
        ("moko", True),
    ],
)
def test_search_by_email_phone_or_name(console, tenant_a, term, found):
    profile = _person(tenant_a, email="thabo@example.co.za", phone="0821234567")
    CustomerProfile.objects.filter(pk=profile.pk).update(first_name="Thabo", last_name="Mokoena")

    page = console.get("/admin/customers/customerprofile/", {"q": term}).content.decode()

    assert ("thabo@example.co.za" in page) is found


def test_customer_page_lists_aliases(console, tenant_a):
    profile = _person(tenant_a, email="lerato@example.co.za", scl_member_id="SCL-77")

    page = console.get(f"/admin/customers/customerprofile/{profile.pk}/change/").content.decode()

    assert "SCL-77" in page
    assert "lerato@example.co.za" in page


def test_another_tenants_customer_page_is_not_shown(console, tenant_b):
    other = _person(tenant_b, email="oliver@example.co.uk")

    response = console.get(f"/admin/customers/customerprofile/{other.pk}/change/", follow=True)

    assert "oliver@example.co.uk" not in response.content.decode()


def _suggested_pair(tenant):
    first = _person(tenant, email="sipho@example.co.za")
    second = _person(tenant, phone="0831234567")
    _person(tenant, email="sipho@example.co.za", phone="0831234567")
    return first, second, MergeSuggestion.objects.get(tenant=tenant)


def test_review_shows_both_profiles_side_by_side(console, tenant_a):
    first, second, suggestion = _suggested_pair(tenant_a)

    page = console.get(f"/admin/customers/mergesuggestion/{suggestion.pk}/change/")

    html = page.content.decode()
    assert str(first.pk) in html and str(second.pk) in html
    assert "+27831234567" in html and "sipho@example.co.za" in html
    assert "Merge, keep the left profile" in html


def test_review_merge_button_merges(console, tenant_a):
    first, second, suggestion = _suggested_pair(tenant_a)

    response = console.post(
        f"/admin/customers/mergesuggestion/{suggestion.pk}/change/",
        {"decision": "keep_left", "keep_left": str(first.pk), "keep_right": str(second.pk)},
        follow=True,
    )

    assert response.status_code == 200
    second.refresh_from_db()
    suggestion.refresh_from_db()
    assert second.status == ProfileStatus.MERGED
    assert second.merged_into_id == first.pk
    assert suggestion.status == SuggestionStatus.MERGED
    assert "Merged into" in response.content.decode()


def test_review_dismiss_keeps_both(console, tenant_a):
    _, _, suggestion = _suggested_pair(tenant_a)

    console.post(
        f"/admin/customers/mergesuggestion/{suggestion.pk}/change/", {"decision": "dismiss"}
    )

    suggestion.refresh_from_db()
    assert suggestion.status == SuggestionStatus.DISMISSED
    assert CustomerProfile.objects.filter(status=ProfileStatus.ACTIVE).count() == 2
