"""The clubs endpoint: tenant scoping, validation and the error shape."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from crm.models import Club
from tests.factories import ClubFactory

pytestmark = pytest.mark.django_db


def test_list_shows_only_the_callers_clubs(api_a, club_a, club_b):
    response = api_a.get("/api/v1/clubs")

    assert response.status_code == 200
    assert [c["name"] for c in response.json()["results"]] == [club_a.name]


def test_another_tenants_club_is_404_like_a_missing_one(api_a, club_b):
    other = api_a.get(f"/api/v1/clubs/{club_b.pk}")
    missing = api_a.get("/api/v1/clubs/00000000-0000-0000-0000-000000000000")

    assert other.status_code == missing.status_code == 404
    assert other.json() == missing.json()
    assert other.json()["error"]["code"] == "not_found"


def test_another_tenants_club_cannot_be_changed(api_a, club_b):
    response = api_a.patch(f"/api/v1/clubs/{club_b.pk}", {"name": "Hijacked"}, format="json")

    assert response.status_code == 404
    club_b.refresh_from_db()
    assert club_b.name != "Hijacked"


def test_create_defaults_the_timezone_to_the_tenants(api_a, tenant_a):
    response = api_a.post("/api/v1/clubs", {"name": "Royal Links"}, format="json")

    assert response.status_code == 201
    assert response.json()["timezone"] == tenant_a.timezone


def test_invalid_fields_are_400_with_field_errors_and_nothing_changes(api_a, club_a):
    response = api_a.post(
        "/api/v1/clubs", {"name": club_a.name, "timezone": "Mars/Olympus"}, format="json"
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["fields"]["name"] == ["A club with this name already exists."]
    assert "Mars/Olympus" in error["fields"]["timezone"][0]
    assert Club.objects.count() == 1


def test_malformed_json_is_400_in_the_error_shape(api_a):
    response = api_a.generic(
        "POST", "/api/v1/clubs", data='{"name": ', content_type="application/json"
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "parse_error"


def test_a_body_that_is_not_an_object_is_400(api_a):
    response = api_a.post("/api/v1/clubs", ["not", "an", "object"], format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_unknown_api_path_is_a_json_404(api_a):
    response = api_a.get("/api/v1/no-such-thing")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_wrong_method_is_a_json_405(api_a, club_a):
    response = api_a.delete(f"/api/v1/clubs/{club_a.pk}")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_list_paginates_by_cursor_and_query_count_does_not_grow(api_a, tenant_a):
    ClubFactory.create_batch(30, tenant=tenant_a)
    api_a.get("/api/v1/clubs")  # the key's first use stamps last_used_at, once a minute

    def page(size: int):
        with CaptureQueriesContext(connection) as queries:
            response = api_a.get(f"/api/v1/clubs?page_size={size}")
        return response, len(queries)

    small, small_queries = page(5)
    large, large_queries = page(25)

    assert len(small.json()["results"]) == 5
    assert len(large.json()["results"]) == 25
    assert small_queries == large_queries
    assert "count" not in small.json()
    following = api_a.get(small.json()["next"])
    names = {c["name"] for c in small.json()["results"]}
    assert not names & {c["name"] for c in following.json()["results"]}
