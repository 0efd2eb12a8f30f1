"""The customers API: list and filters, resolve, lookup, get, patch, merge, suggestions."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.models import CustomerProfile, MergeSuggestion, ProfileStatus
from tests.factories import ClubFactory

from .helpers import person

pytestmark = pytest.mark.django_db


def _post(client, path, body):
    return client.post(path, body, format="json")


def test_resolve_creates_201_then_matches_200(api_a):
    created = _post(
        api_a, "/api/v1/customers/resolve", {"email": " Jo@Example.com ", "phone": "082 123 4567"}
    )
    matched = _post(api_a, "/api/v1/customers/resolve", {"phone": "+27821234567"})

    assert created.status_code == 201
    assert created.json()["is_new"] is True
    assert created.json()["profile"]["email"] == "jo@example.com"
    assert matched.status_code == 200
    body = matched.json()
    assert body["profile"]["id"] == created.json()["profile"]["id"]
    assert (body["is_new"], body["matched_by"], body["confidence"]) == (False, ["phone"], 85)
    assert body["merge_suggested_with"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"phone": "12"}, "phone"),
        ({"external_ids": ["x"]}, "external_ids"),
        ({}, "non_field_errors"),
        ({"email": ""}, "non_field_errors"),
    ],
)
def test_resolve_refuses_bad_hints_with_field_errors_and_creates_nothing(api_a, body, field):
    response = _post(api_a, "/api/v1/customers/resolve", body)

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert CustomerProfile.objects.count() == 0


def test_resolve_body_that_is_not_an_object_is_400(api_a):
    response = api_a.generic(
        "POST", "/api/v1/customers/resolve", "[1,2", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_lookup_finds_or_404s_and_never_creates(api_a, tenant_a):
    jo = person(tenant_a, email="jo@example.com", external_ids={"mca": "5"})

    found = api_a.get("/api/v1/customers/lookup", {"email": "JO@example.com"})
    by_external = api_a.get("/api/v1/customers/lookup", {"external_ids[mca]": "5"})
    missing = api_a.get("/api/v1/customers/lookup", {"email": "ghost@example.com"})

    assert found.json()["profile"]["id"] == str(jo.pk)
    assert by_external.json()["profile"]["id"] == str(jo.pk)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert CustomerProfile.objects.count() == 1


def test_list_filters(api_a, tenant_a):
    club = ClubFactory(tenant=tenant_a)
    jo = person(tenant_a, email="jo@example.com", phone="0821234567")
    CustomerProfile.objects.filter(pk=jo.pk).update(
        first_name="Johanna", last_name="Botha", home_club=club, lifecycle_stage="MEMBER"
    )
    person(tenant_a, email="sam@example.com")

    def ids(**params):
        response = api_a.get("/api/v1/customers", params)
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    assert ids(email="JO@example.com") == [str(jo.pk)]
    assert ids(phone="082 123 4567") == [str(jo.pk)]
    assert ids(q="botha") == [str(jo.pk)]
    assert ids(q="EXAMPLE") and len(ids(q="example")) == 2
    assert ids(club=str(club.pk)) == [str(jo.pk)]
    assert ids(lifecycle_stage="MEMBER") == [str(jo.pk)]
    assert ids(updated_since="2999-01-01T00:00:00Z") == []


def test_list_hides_merged_profiles_unless_asked(api_a, tenant_a):
    winner, loser = person(tenant_a, email="w@x.co"), person(tenant_a, email="l@x.co")
    _post(api_a, f"/api/v1/customers/{winner.pk}/merge", {"loser_id": str(loser.pk)})

    default = api_a.get("/api/v1/customers").json()["results"]
    merged = api_a.get("/api/v1/customers", {"status": "MERGED"}).json()["results"]

    assert [row["id"] for row in default] == [str(winner.pk)]
    assert [row["id"] for row in merged] == [str(loser.pk)]


def test_list_bad_filter_values_are_400(api_a):
    assert api_a.get("/api/v1/customers", {"status": "ASLEEP"}).status_code == 400
    assert api_a.get("/api/v1/customers", {"phone": "12"}).status_code == 400
    assert api_a.get("/api/v1/customers", {"updated_since": "yesterday"}).status_code == 400


def test_list_query_count_does_not_grow_with_page_size(api_a, tenant_a):
    for i in range(30):
        person(tenant_a, email=f"p{i}@example.com")
    api_a.get("/api/v1/customers")  # warm-up: the key's last_used_at is stamped once

    def count(size):
        with CaptureQueriesContext(connection) as queries:
            response = api_a.get("/api/v1/customers", {"page_size": size})
        assert len(response.json()["results"]) == size
        assert "count" not in response.json()
        assert not any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)
        return len(queries)

    assert count(5) == count(25)


def test_get_and_patch(api_a, tenant_a):
    jo = person(tenant_a, email="jo@example.com")

    response = api_a.patch(
        f"/api/v1/customers/{jo.pk}",
        {
            "first_name": "Jo",
            "email": "NEW@example.com",
            "phone": "083 555 0000",
            "tags": ["ladies", "ladies "],
        },
        format="json",
    )

    assert response.status_code == 200, response.json()
    body = api_a.get(f"/api/v1/customers/{jo.pk}").json()
    assert (body["first_name"], body["email"], body["phone"], body["tags"]) == (
        "Jo",
        "new@example.com",
        "+27835550000",
        ["ladies"],
    )
    # The old email still resolves to the same person.
    old = api_a.get("/api/v1/customers/lookup", {"email": "jo@example.com"}).json()
    assert old["profile"]["id"] == str(jo.pk)


def test_patch_with_another_customers_email_is_409_and_changes_nothing(api_a, tenant_a):
    jo = person(tenant_a, email="jo@example.com")
    person(tenant_a, email="sam@example.com")

    response = api_a.patch(
        f"/api/v1/customers/{jo.pk}", {"email": "sam@example.com", "first_name": "X"}, format="json"
    )

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert "email" in response.json()["error"]["fields"]
    jo.refresh_from_db()
    assert (jo.email, jo.first_name) == ("jo@example.com", "")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "nope"}, "email"),
        ({"status": "MERGED"}, "status"),
        ({"lifecycle_stage": "ALIEN"}, "lifecycle_stage"),
        ({"home_club_id": "00000000-0000-0000-0000-000000000000"}, "home_club_id"),
        ({"date_of_birth": "31/02/1990"}, "date_of_birth"),
        ({}, "non_field_errors"),
    ],
)
def test_patch_validation_errors_change_nothing(api_a, tenant_a, body, field):
    jo = person(tenant_a, email="jo@example.com")

    response = api_a.patch(f"/api/v1/customers/{jo.pk}", body, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    before = jo.updated_at
    jo.refresh_from_db()
    assert jo.updated_at == before


def test_patch_cannot_use_another_tenants_club(api_a, tenant_a, club_b):
    jo = person(tenant_a, email="jo@example.com")
    response = api_a.patch(
        f"/api/v1/customers/{jo.pk}", {"home_club_id": str(club_b.pk)}, format="json"
    )
    assert response.status_code == 400


def test_merge_endpoint(api_a, tenant_a):
    winner, loser = person(tenant_a, email="w@x.co"), person(tenant_a, email="l@x.co")

    response = _post(
        api_a,
        f"/api/v1/customers/{winner.pk}/merge",
        {"loser_id": str(loser.pk), "reason": "duplicate"},
    )

    assert response.status_code == 200
    assert response.json()["winner"]["id"] == str(winner.pk)
    assert response.json()["moved"]["aliases"] == 1
    loser.refresh_from_db()
    assert loser.status == ProfileStatus.MERGED
    again = _post(api_a, f"/api/v1/customers/{winner.pk}/merge", {"loser_id": str(loser.pk)})
    assert again.status_code == 400
    assert (
        _post(api_a, f"/api/v1/customers/{winner.pk}/merge", {"loser_id": "x"}).status_code == 400
    )


def test_merge_suggestions_list_accept_dismiss(api_a, tenant_a):
    by_email = person(tenant_a, email="jo@example.com")
    by_scl = person(tenant_a, scl_member_id="S1")
    _post(api_a, "/api/v1/customers/resolve", {"email": "jo@example.com", "scl_member_id": "S1"})
    person(tenant_a, email="x@example.com")
    person(tenant_a, scl_member_id="S2")
    _post(api_a, "/api/v1/customers/resolve", {"email": "x@example.com", "scl_member_id": "S2"})

    listed = api_a.get("/api/v1/merge-suggestions", {"status": "PENDING"}).json()["results"]
    assert len(listed) == 2
    first = next(
        s
        for s in listed
        if by_email.pk in (s["profile_id"], s["candidate_id"])
        or str(by_email.pk) in (s["profile_id"], s["candidate_id"])
    )
    other = next(s for s in listed if s is not first)

    accepted = _post(api_a, f"/api/v1/merge-suggestions/{first['id']}/accept", {})
    dismissed = _post(api_a, f"/api/v1/merge-suggestions/{other['id']}/dismiss", {})

    assert accepted.status_code == 200
    assert accepted.json()["winner"]["id"] == str(by_scl.pk)  # the resolve's choice survives
    assert dismissed.json()["status"] == "DISMISSED"
    assert _post(api_a, f"/api/v1/merge-suggestions/{other['id']}/dismiss", {}).status_code == 400
    assert MergeSuggestion.objects.filter(status="PENDING").count() == 0


def test_every_endpoint_answers_404_for_another_tenants_ids(api_a, api_b, tenant_b):
    theirs = person(tenant_b, email="o@x.co")
    mine = _post(api_a, "/api/v1/customers/resolve", {"email": "m@x.co"}).json()["profile"]["id"]
    person(tenant_b, scl_member_id="S1")
    _post(api_b, "/api/v1/customers/resolve", {"email": "o@x.co", "scl_member_id": "S1"})
    suggestion = MergeSuggestion.objects.get(tenant=tenant_b)

    assert api_a.get(f"/api/v1/customers/{theirs.pk}").status_code == 404
    assert (
        api_a.patch(
            f"/api/v1/customers/{theirs.pk}", {"first_name": "X"}, format="json"
        ).status_code
        == 404
    )
    assert (
        _post(api_a, f"/api/v1/customers/{theirs.pk}/merge", {"loser_id": mine}).status_code == 404
    )
    assert (
        _post(api_a, f"/api/v1/customers/{mine}/merge", {"loser_id": str(theirs.pk)}).status_code
        == 404
    )
    assert api_a.get(f"/api/v1/merge-suggestions/{suggestion.pk}").status_code == 404
    assert _post(api_a, f"/api/v1/merge-suggestions/{suggestion.pk}/accept", {}).status_code == 404
    assert _post(api_a, f"/api/v1/merge-suggestions/{suggestion.pk}/dismiss", {}).status_code == 404
    assert api_a.get("/api/v1/customers/lookup", {"email": "o@x.co"}).status_code == 404
    assert str(theirs.pk) not in str(api_a.get("/api/v1/customers").json())
    theirs.refresh_from_db()
    assert theirs.status == ProfileStatus.ACTIVE
