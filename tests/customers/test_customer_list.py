"""The customer list answers a club marketer's questions: columns and filters (club,
lifecycle, membership type, consent, last activity, handicap band), saved views per staff
member, and still no count of the table."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from customers.models import CustomerProfile, SavedFilter
from tests.customers.helpers import person
from tests.factories import ClubFactory, StaffMembershipFactory, UserFactory

pytestmark = pytest.mark.django_db
LIST = "/admin/customers/customerprofile/"


@pytest.fixture
def console(client, staff_a):
    client.force_login(staff_a)
    return client


def _golfer(tenant, email, **fields):
    profile = person(tenant, email=email)
    CustomerProfile.objects.filter(pk=profile.pk).update(**fields)
    return profile


@pytest.fixture
def people(tenant_a, club_a):
    other_club = ClubFactory(tenant=tenant_a, name="Links A Nine")
    now = timezone.now()
    return {
        "thabo": _golfer(
            tenant_a,
            "thabo@example.com",
            home_club_id=club_a.pk,
            lifecycle_stage="MEMBER",
            membership_type="Full",
            membership_status="ACTIVE",
            handicap_index=Decimal("8.2"),
            email_opt_in=True,
            last_activity_at=now - timedelta(days=2),
        ),
        "lerato": _golfer(
            tenant_a,
            "lerato@example.com",
            home_club_id=other_club.pk,
            lifecycle_stage="LAPSED",
            membership_type="Weekday",
            handicap_index=Decimal("22.0"),
            last_activity_at=now - timedelta(days=120),
        ),
        "sipho": _golfer(tenant_a, "sipho@example.com", lifecycle_stage="VISITOR"),
    }


def _emails(client, query: str) -> set[str]:
    html = client.get(f"{LIST}?{query}").content.decode()
    return {name for name in ("thabo", "lerato", "sipho") if f"{name}@example.com" in html}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("lifecycle_stage__exact=MEMBER", {"thabo"}),
        ("membership=full", {"thabo"}),
        ("consent=email", {"thabo"}),
        ("consent=none", {"lerato", "sipho"}),
        ("active=7", {"thabo"}),
        ("active=quiet", {"lerato"}),
        ("active=never", {"sipho"}),
        ("handicap=0-9", {"thabo"}),
        ("handicap=19-28", {"lerato"}),
        ("handicap=none", {"sipho"}),
    ],
)
def test_filters_answer_questions(console, people, query, expected):
    assert _emails(console, query) == expected


def test_club_filter_lists_only_the_staff_tenants_clubs(console, people, club_a, club_b):
    html = console.get(LIST).content.decode()

    assert club_a.name in html and "Links A Nine" in html
    assert club_b.name not in html
    assert _emails(console, f"club={club_a.pk}") == {"thabo"}
    assert _emails(console, f"club={club_b.pk}") == set()  # another tenant's club: nobody


def test_columns_show_membership_handicap_and_consent(console, people):
    html = console.get(LIST).content.decode()

    assert "Full (Active)" in html
    assert "8.2" in html
    assert "Lapsed member" in html


def test_the_filtered_list_never_counts_the_table(console, people):
    with CaptureQueriesContext(connection) as queries:
        response = console.get(f"{LIST}?lifecycle_stage__exact=MEMBER&consent=email&active=30")

    assert response.status_code == 200
    assert not [
        q for q in queries if "COUNT(" in q["sql"].upper() and "customerprofile" in q["sql"]
    ]


def test_a_saved_view_is_listed_and_reopens_the_filters(console, staff_a, tenant_a, people):
    response = console.post(
        f"{LIST}saved-filters/add/",
        {"name": "Active full members", "query": "lifecycle_stage__exact=MEMBER&p=3"},
    )

    assert response.status_code == 302
    saved = SavedFilter.objects.get()
    assert (saved.user, saved.tenant, saved.query) == (
        staff_a,
        tenant_a,
        "lifecycle_stage__exact=MEMBER",
    )
    html = console.get(LIST).content.decode()
    assert "Active full members" in html
    assert 'href="?lifecycle_stage__exact=MEMBER"' in html


def test_saved_views_are_per_staff_member(console, client, tenant_a, people):
    console.post(f"{LIST}saved-filters/add/", {"name": "Mine", "query": "active=7"})
    colleague = StaffMembershipFactory(tenant=tenant_a, user=UserFactory(username="carl")).user
    client.force_login(colleague)

    assert 'data-testid="saved-filter"' not in client.get(LIST).content.decode()
    saved = SavedFilter.objects.get()
    assert client.post(f"{LIST}saved-filters/{saved.pk}/delete/").status_code == 404
    assert SavedFilter.objects.exists()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"name": "", "query": "active=7"}, "Name the view"),
        ({"name": "x" * 81, "query": "active=7"}, "Name the view"),
        ({"name": "Everything", "query": ""}, "Filter or search the list first"),
    ],
)
def test_a_bad_view_is_refused_with_a_message(console, people, data, error):
    response = console.post(f"{LIST}saved-filters/add/", data, follow=True)

    assert error in response.content.decode()
    assert not SavedFilter.objects.exists()


def test_removing_a_saved_view(console, people):
    console.post(f"{LIST}saved-filters/add/", {"name": "Quiet", "query": "active=quiet"})
    saved = SavedFilter.objects.get()

    response = console.post(f"{LIST}saved-filters/{saved.pk}/delete/", follow=True)

    assert "Removed the view" in response.content.decode()
    assert not SavedFilter.objects.exists()
