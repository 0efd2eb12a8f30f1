from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_resolve_creates_then_matches(api_a):
    created = api_a.post(
        "/api/v1/customers/resolve",
        {"email": " Jo@Example.com ", "phone": "082 123 4567"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    again = api_a.post(
        "/api/v1/customers/resolve", {"phone": "+27821234567", "auth_user_id": "u1"}, format="json"
    )
    assert again.status_code == 200, again.json()
    body = again.json()
    assert body["profile"]["id"] == created.json()["profile"]["id"]
    assert body["matched_by"] == ["phone"]
    assert body["profile"]["auth_user_id"] == "u1"
    listing = api_a.get("/api/v1/customers?q=jo")
    assert listing.status_code == 200
    assert len(listing.json()["results"]) == 1
