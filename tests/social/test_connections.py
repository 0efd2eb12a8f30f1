"""Connections: OAuth state and PKCE, the Facebook Page choice, encryption at rest, the
refresh race."""

from __future__ import annotations

import base64
import hashlib
import threading
from datetime import timedelta
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import responses
import time_machine
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection as db
from django.utils import timezone

from crm.fields import decrypt_str
from social.connections import (
    OAuthFlowError,
    connection_refresh,
    connections_refresh_due,
    oauth_complete,
    oauth_purge_expired,
    oauth_start,
    page_choice_options,
    page_choice_pick,
)
from social.models import Connection, ConnectionStatus, OAuthState, PageChoice, Platform
from tests.factories import ClubFactory, TenantFactory, UserFactory

from .conftest import DIALOG, X_AUTH, graph, x
from .helpers import make_connection

SESSION = "session-anna"
REDIRECT = "https://crm.test/admin/social/callback/"


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def _x_token_ok(platform, *, access="x-access-1", refresh="x-refresh-1"):
    platform.post(
        x("2/oauth2/token"),
        json={
            "token_type": "bearer",
            "expires_in": 7200,
            "access_token": access,
            "refresh_token": refresh,
            "scope": "tweet.read tweet.write users.read offline.access",
        },
    )
    platform.get(
        x("2/users/me"), json={"data": {"id": "2244994945", "name": "Links", "username": "links"}}
    )


@pytest.fixture
def anna(tenant_a, staff_a):
    return staff_a


def _start(tenant, club, user, platform_name=Platform.X, session=SESSION):
    return oauth_start(
        tenant=tenant,
        club=club,
        platform=platform_name,
        user=user,
        session_key=session,
        redirect_uri=REDIRECT,
    )


# --- X: PKCE, scopes, state -----------------------------------------------------------------


def test_x_connect_uses_pkce_s256_and_asks_for_offline_access(platform, tenant_a, club_a, anna):
    url = _start(tenant_a, club_a, anna)
    params = _query(url)
    assert url.startswith(X_AUTH)
    assert params["code_challenge_method"] == "S256"
    assert set(params["scope"].split()) == {
        "tweet.read",
        "tweet.write",
        "users.read",
        "media.write",
        "offline.access",
    }
    _x_token_ok(platform)

    result = oauth_complete(state=params["state"], code="the-code", session_key=SESSION, user=anna)

    token_call = next(c for c in platform.calls if c.request.url == x("2/oauth2/token"))
    body = parse_qs(token_call.request.body)
    verifier = body["code_verifier"][0]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    assert challenge.decode() == params["code_challenge"]
    assert body["grant_type"] == ["authorization_code"]
    conn = result.connection
    assert (conn.platform, conn.account_id, conn.account_name) == (
        Platform.X,
        "2244994945",
        "@links",
    )
    assert conn.refresh_token == "x-refresh-1"
    assert conn.connected_by == anna
    assert conn.status == ConnectionStatus.ACTIVE
    assert not OAuthState.objects.exists()  # spent


def test_a_tampered_state_is_refused_before_any_token_call(platform, tenant_a, club_a, anna):
    state = _query(_start(tenant_a, club_a, anna))["state"]
    tampered = state[:-3] + ("AAA" if state[-3:] != "AAA" else "BBB")
    with pytest.raises(OAuthFlowError):
        oauth_complete(state=tampered, code="c", session_key=SESSION, user=anna)
    assert len(platform.calls) == 0
    assert not Connection.objects.exists()


def test_a_replayed_state_is_refused(platform, tenant_a, club_a, anna):
    state = _query(_start(tenant_a, club_a, anna))["state"]
    _x_token_ok(platform)
    oauth_complete(state=state, code="c", session_key=SESSION, user=anna)
    calls = len(platform.calls)
    with pytest.raises(OAuthFlowError):
        oauth_complete(state=state, code="c", session_key=SESSION, user=anna)
    assert len(platform.calls) == calls


def test_an_expired_state_is_refused(platform, tenant_a, club_a, anna):
    state = _query(_start(tenant_a, club_a, anna))["state"]
    later = timezone.now() + timedelta(minutes=11)
    with time_machine.travel(later), pytest.raises(OAuthFlowError):
        oauth_complete(state=state, code="c", session_key=SESSION, user=anna)
    assert len(platform.calls) == 0


def test_a_state_from_another_session_is_refused_and_not_spent(platform, tenant_a, club_a, anna):
    state = _query(_start(tenant_a, club_a, anna))["state"]
    with pytest.raises(OAuthFlowError):
        oauth_complete(state=state, code="c", session_key="session-mallory", user=anna)
    mallory = UserFactory(username="mallory")
    with pytest.raises(OAuthFlowError):
        oauth_complete(state=state, code="c", session_key=SESSION, user=mallory)
    assert len(platform.calls) == 0
    _x_token_ok(platform)
    assert oauth_complete(state=state, code="c", session_key=SESSION, user=anna).connection


def test_unfinished_connect_flows_are_forgotten(tenant_a, club_a, anna):
    _start(tenant_a, club_a, anna)
    assert oauth_purge_expired() == 0
    assert oauth_purge_expired(now=timezone.now() + timedelta(minutes=11)) == 1
    assert not OAuthState.objects.exists()


def test_a_token_exchange_error_connects_nothing(platform, tenant_a, club_a, anna):
    state = _query(_start(tenant_a, club_a, anna))["state"]
    platform.post(
        x("2/oauth2/token"),
        status=400,
        json={"error": "invalid_request", "error_description": "Value passed for code invalid"},
    )
    with pytest.raises(OAuthFlowError) as refused:
        oauth_complete(state=state, code="bad", session_key=SESSION, user=anna)
    assert "invalid_request" in str(refused.value)
    assert not Connection.objects.exists()


# --- Facebook / Instagram: long-lived token, Page choice, Page token --------------------------


def _meta_tokens(platform):
    platform.get(
        graph("oauth/access_token"),
        match=[responses.matchers.query_param_matcher({"code": "fb-code"}, strict_match=False)],
        json={"access_token": "USER-SHORT", "token_type": "bearer", "expires_in": 3600},
    )
    platform.get(
        graph("oauth/access_token"),
        match=[
            responses.matchers.query_param_matcher(
                {"grant_type": "fb_exchange_token", "fb_exchange_token": "USER-SHORT"},
                strict_match=False,
            )
        ],
        json={"access_token": "USER-LONG", "token_type": "bearer", "expires_in": 5183944},
    )
    platform.get(
        graph("me/accounts"),
        match=[
            responses.matchers.query_param_matcher(
                {"access_token": "USER-LONG"}, strict_match=False
            )
        ],
        json={
            "data": [
                {
                    "id": "111",
                    "name": "Links A Golf",
                    "category": "Golf Course & Driving Range",
                    "access_token": "PAGE-111-TOKEN",
                    "tasks": ["CREATE_CONTENT", "MANAGE"],
                    "instagram_business_account": {"id": "17841400000000001", "username": "linksa"},
                },
                {
                    "id": "222",
                    "name": "Links A Pro Shop",
                    "category": "Shop",
                    "access_token": "PAGE-222-TOKEN",
                    "tasks": ["CREATE_CONTENT"],
                },
            ]
        },
    )


def test_facebook_stores_the_picked_page_s_token_not_the_user_s(platform, tenant_a, club_a, anna):
    url = _start(tenant_a, club_a, anna, Platform.FACEBOOK_PAGE)
    assert url.startswith(f"{DIALOG}/v26.0/dialog/oauth")
    params = _query(url)
    assert params["code_challenge_method"] == "S256"
    assert "pages_manage_posts" in params["scope"]
    _meta_tokens(platform)

    result = oauth_complete(state=params["state"], code="fb-code", session_key=SESSION, user=anna)

    choice = result.page_choice
    assert [p["name"] for p in page_choice_options(choice=choice)] == [
        "Links A Golf",
        "Links A Pro Shop",
    ]
    assert all("access_token" not in p for p in page_choice_options(choice=choice))
    assert not Connection.objects.exists()  # nothing stored until staff pick a Page
    conn = page_choice_pick(
        tenant=tenant_a, choice_id=choice.pk, page_id="222", session_key=SESSION, user=anna
    )
    assert (conn.platform, conn.account_id, conn.account_name) == (
        Platform.FACEBOOK_PAGE,
        "222",
        "Links A Pro Shop",
    )
    assert conn.access_token == "PAGE-222-TOKEN"
    assert conn.refresh_token is None
    assert not PageChoice.objects.exists()
    with db.cursor() as cursor:
        cursor.execute("SELECT access_token FROM social_connection")
        assert decrypt_str(cursor.fetchone()[0]) == "PAGE-222-TOKEN"


def test_instagram_connects_the_professional_account_through_its_page(
    platform, tenant_a, club_a, anna
):
    params = _query(_start(tenant_a, club_a, anna, Platform.INSTAGRAM))
    assert "instagram_content_publish" in params["scope"]
    _meta_tokens(platform)
    choice = oauth_complete(
        state=params["state"], code="fb-code", session_key=SESSION, user=anna
    ).page_choice
    # Only Pages with a linked Instagram professional account are offered.
    assert [p["id"] for p in page_choice_options(choice=choice)] == ["111"]
    conn = page_choice_pick(
        tenant=tenant_a, choice_id=choice.pk, page_id="111", session_key=SESSION, user=anna
    )
    assert (conn.platform, conn.account_id, conn.account_name) == (
        Platform.INSTAGRAM,
        "17841400000000001",
        "@linksa",
    )
    assert conn.access_token == "PAGE-111-TOKEN"


def test_a_page_choice_of_another_session_or_tenant_is_refused(
    platform, tenant_a, tenant_b, club_a, anna
):
    params = _query(_start(tenant_a, club_a, anna, Platform.FACEBOOK_PAGE))
    _meta_tokens(platform)
    choice = oauth_complete(
        state=params["state"], code="fb-code", session_key=SESSION, user=anna
    ).page_choice
    for tenant, session in ((tenant_a, "other-session"), (tenant_b, SESSION)):
        with pytest.raises(OAuthFlowError):
            page_choice_pick(
                tenant=tenant, choice_id=choice.pk, page_id="111", session_key=session, user=anna
            )
    assert not Connection.objects.exists()


# --- encryption at rest ------------------------------------------------------------------------


def test_tokens_are_absent_from_a_plain_sql_read(tenant_a, club_a):
    make_connection(
        tenant_a, club_a, access_token="secret-access-XYZ", refresh_token="secret-refresh-XYZ"
    )
    with db.cursor() as cursor:
        cursor.execute("SELECT access_token, refresh_token FROM social_connection")
        raw = " ".join(cursor.fetchone())
    assert "secret-access-XYZ" not in raw
    assert "secret-refresh-XYZ" not in raw
    assert Connection.objects.get().access_token == "secret-access-XYZ"


def test_rotate_encryption_keys_re_encrypts_connection_tokens(settings, tenant_a, club_a):
    old = settings.ENCRYPTION_KEYS[0]
    make_connection(tenant_a, club_a, access_token="tok-A", refresh_token="ref-A")
    new = Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [new, old]
    call_command("rotate_encryption_keys", verbosity=0)
    settings.ENCRYPTION_KEYS = [new]  # the old key is gone: rows must read with the new one
    conn = Connection.objects.get()
    assert (conn.access_token, conn.refresh_token) == ("tok-A", "ref-A")
    with db.cursor() as cursor:
        cursor.execute("SELECT access_token FROM social_connection")
        Fernet(new.encode()).decrypt(cursor.fetchone()[0].encode())


# --- refresh ----------------------------------------------------------------------------------


def test_refresh_rotates_the_x_tokens(platform, tenant_a, club_a):
    soon = timezone.now() + timedelta(minutes=5)
    conn = make_connection(tenant_a, club_a, token_expires_at=soon)
    platform.post(
        x("2/oauth2/token"),
        json={"access_token": "new-access", "refresh_token": "new-refresh", "expires_in": 7200},
    )
    assert connections_refresh_due() == {"refreshed": 1}
    conn.refresh_from_db()
    assert (conn.access_token, conn.refresh_token) == ("new-access", "new-refresh")
    assert conn.token_expires_at > timezone.now() + timedelta(hours=1)
    body = parse_qs(platform.calls[0].request.body)
    assert body["grant_type"] == ["refresh_token"]
    assert body["refresh_token"] == ["refresh-token-1"]
    # Not due any more: a second sweep spends nothing.
    assert connections_refresh_due() == {}
    assert len(platform.calls) == 1


def test_a_refused_refresh_needs_attention(platform, tenant_a, club_a):
    conn = make_connection(tenant_a, club_a, token_expires_at=timezone.now())
    platform.post(
        x("2/oauth2/token"),
        status=400,
        json={"error": "invalid_request", "error_description": "Value passed for token invalid"},
    )
    assert connection_refresh(connection_id=conn.pk) == "failed"
    conn.refresh_from_db()
    assert conn.status == ConnectionStatus.NEEDS_ATTENTION
    assert "invalid" in conn.status_error


@pytest.mark.django_db(transaction=True)
def test_two_racing_refreshers_spend_the_refresh_token_once(platform):
    tenant = TenantFactory(slug="race")
    club = ClubFactory(tenant=tenant)
    conn = make_connection(tenant, club, token_expires_at=timezone.now() + timedelta(minutes=1))
    inside, release = threading.Event(), threading.Event()
    spent: list[str] = []

    def token_endpoint(request):
        spent.append(parse_qs(request.body)["refresh_token"][0])
        inside.set()
        release.wait(10)  # hold the row lock while the second refresher tries
        return (200, {}, '{"access_token": "a2", "refresh_token": "r2", "expires_in": 7200}')

    platform.add_callback(responses.POST, x("2/oauth2/token"), callback=token_endpoint)
    outcomes: list[str] = []

    def refresher():
        try:
            outcomes.append(connection_refresh(connection_id=conn.pk))
        finally:
            db.close()

    first = threading.Thread(target=refresher)
    first.start()
    assert inside.wait(10)
    second = threading.Thread(target=refresher)
    second.start()
    second.join(10)
    release.set()
    first.join(10)
    # After the first finished, a late third refresher sees the new expiry and does nothing.
    outcomes.append(connection_refresh(connection_id=conn.pk))
    assert sorted(outcomes) == ["refreshed", "skipped", "skipped"]
    assert spent == ["refresh-token-1"]
    conn.refresh_from_db()
    assert conn.refresh_token == "r2"
