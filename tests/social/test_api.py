"""The social API: tokens never shown, posts and their actions, promotions by hand,
scopes, and another tenant's rows answering 404."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from crm.services import api_key_create
from social.models import ConnectionStatus, Publication, PublicationStatus

from .helpers import make_connection


@pytest.fixture
def x_a(tenant_a, club_a):
    return make_connection(tenant_a, club_a, account_id="x1", access_token="SECRET-TOKEN")


def _create(api, club, conn, **extra):
    return api.post(
        "/api/v1/social/posts",
        {"club_id": str(club.pk), "connection_ids": [str(conn.pk)], "content": "Hi", **extra},
        format="json",
    )


def test_connections_are_listed_without_tokens(api_a, x_a):
    response = api_a.get("/api/v1/social/connections")
    assert response.status_code == 200
    assert "SECRET-TOKEN" not in response.content.decode()
    assert response.json()["results"][0]["account_id"] == "x1"


def test_disconnect_forgets_the_tokens(api_a, x_a):
    response = api_a.post(f"/api/v1/social/connections/{x_a.pk}/disconnect")
    assert response.status_code == 200
    assert response.json()["status"] == ConnectionStatus.DISCONNECTED
    x_a.refresh_from_db()
    assert x_a.access_token == ""
    assert x_a.refresh_token is None


def test_create_schedule_and_cancel_a_post(api_a, club_a, x_a):
    created = _create(api_a, club_a, x_a, hashtags=["golf"])
    assert created.status_code == 201, created.json()
    post = created.json()
    assert [p["status"] for p in post["publications"]] == ["DRAFT"]
    scheduled = api_a.post(
        f"/api/v1/social/posts/{post['id']}/schedule",
        {"scheduled_at": "2030-01-01T09:00:00Z"},
        format="json",
    )
    assert scheduled.status_code == 200
    assert scheduled.json()["publications"][0]["status"] == "SCHEDULED"
    assert scheduled.json()["publications"][0]["scheduled_at"] == "2030-01-01T09:00:00Z"
    past = api_a.post(
        f"/api/v1/social/posts/{post['id']}/schedule",
        {"scheduled_at": "2020-01-01T09:00:00Z"},
        format="json",
    )
    assert past.status_code == 400
    assert "scheduled_at" in past.json()["error"]["fields"]
    cancelled = api_a.post(f"/api/v1/social/posts/{post['id']}/cancel")
    assert cancelled.json()["publications"][0]["status"] == "CANCELLED"


def test_a_post_too_long_for_x_is_a_field_error_and_stays_a_draft(api_a, club_a, x_a):
    post = _create(api_a, club_a, x_a, content="a" * 281).json()
    response = api_a.post(f"/api/v1/social/posts/{post['id']}/publish-now")
    assert response.status_code == 400
    assert "content" in response.json()["error"]["fields"]
    assert Publication.objects.get().status == PublicationStatus.DRAFT


def test_bad_input_is_a_400_with_field_errors(api_a, club_a, x_a):
    response = _create(api_a, club_a, x_a, link="ftp://nope")
    assert response.status_code == 400
    assert "link" in response.json()["error"]["fields"]
    response = _create(api_a, club_a, x_a, hashtags=["two words"], media_urls=["nope"])
    assert response.status_code == 400
    assert {"hashtags", "media_urls"} <= set(response.json()["error"]["fields"])
    assert not Publication.objects.exists()


def test_another_tenant_s_rows_are_404_and_its_accounts_unusable(
    api_a, api_b, tenant_b, club_a, club_b, x_a
):
    post = _create(api_a, club_a, x_a).json()
    for url in (
        f"/api/v1/social/posts/{post['id']}",
        f"/api/v1/social/connections/{x_a.pk}",
        f"/api/v1/social/publications/{post['publications'][0]['id']}",
    ):
        assert api_b.get(url).status_code == 404, url
    assert api_b.post(f"/api/v1/social/posts/{post['id']}/publish-now").status_code == 404
    assert api_b.post(f"/api/v1/social/connections/{x_a.pk}/disconnect").status_code == 404
    assert api_b.get("/api/v1/social/posts").json()["results"] == []
    # Tenant B cannot post to tenant A's account, nor name tenant A's club.
    b_conn = make_connection(tenant_b, club_b, account_id="b1")
    assert _create(api_b, club_b, x_a).status_code == 400
    assert _create(api_b, club_a, b_conn).status_code == 400
    x_a.refresh_from_db()
    assert x_a.status == ConnectionStatus.ACTIVE


def test_promote_by_hand_and_cancel(api_a, club_a, x_a):
    response = api_a.post(
        "/api/v1/social/promotions",
        {
            "competitionId": "C-9",
            "name": "Winter Cup",
            "startsAt": "2099-01-20T08:00:00Z",
            "clubId": str(club_a.pk),
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    promotion = response.json()
    assert promotion["source_id"] == "C-9"
    # The club has no promotion settings: no channels, so no campaigns and no reminders.
    assert (promotion["campaign_id"], promotion["reminders"]) == (None, [])
    cancelled = api_a.post(f"/api/v1/social/promotions/{promotion['id']}/cancel")
    assert cancelled.json()["status"] == "CANCELLED"


def test_social_scopes_are_required(tenant_a, x_a):
    reader = api_key_create(tenant=tenant_a, name="reader", scopes=["social:read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {reader.raw_key}")
    assert client.get("/api/v1/social/connections").status_code == 200
    assert client.post(f"/api/v1/social/connections/{x_a.pk}/disconnect").status_code == 403
    outsider = api_key_create(tenant=tenant_a, name="crm", scopes=["customers:read"])
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {outsider.raw_key}")
    assert client.get("/api/v1/social/posts").status_code == 403
