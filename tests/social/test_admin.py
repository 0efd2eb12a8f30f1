"""The admin's connect flow (connect → platform → callback → pick a Page), connection
health on the list, and tenant scoping."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from django.test import Client

from crm.audit import AuditAction
from crm.models import AuditEvent
from social.connections import connection_mark_needs_attention
from social.models import Connection, ConnectionStatus, Platform

from .conftest import X_AUTH
from .helpers import make_connection
from .test_connections import _meta_tokens, _x_token_ok


@pytest.fixture
def browser(staff_a):
    client = Client()
    client.force_login(staff_a)
    return client


def _connect(browser, club, platform_name):
    response = browser.post(
        "/admin/social/connection/connect/", {"club": str(club.pk), "platform": platform_name}
    )
    assert response.status_code == 302
    return response["Location"], dict(parse_qsl(urlsplit(response["Location"]).query))


def test_connect_x_through_the_admin(browser, platform, club_a, staff_a):
    location, params = _connect(browser, club_a, Platform.X)
    assert location.startswith(X_AUTH)
    assert params["redirect_uri"] == "http://testserver/admin/social/connection/callback/"
    _x_token_ok(platform)
    done = browser.get(
        "/admin/social/connection/callback/", {"state": params["state"], "code": "c"}, follow=True
    )
    assert "Connected X: @links" in done.content.decode()
    assert Connection.objects.get().connected_by == staff_a


def test_a_callback_in_another_browser_is_refused(browser, platform, club_a, staff_a):
    _, params = _connect(browser, club_a, Platform.X)
    thief = Client()
    thief.force_login(staff_a)  # same user, another session
    page = thief.get(
        "/admin/social/connection/callback/", {"state": params["state"], "code": "c"}, follow=True
    )
    assert "invalid or has expired" in page.content.decode()
    assert not Connection.objects.exists()
    assert not platform.calls


def test_connect_a_facebook_page_by_picking_it(browser, platform, club_a):
    _, params = _connect(browser, club_a, Platform.FACEBOOK_PAGE)
    _meta_tokens(platform)
    pick = browser.get(
        "/admin/social/connection/callback/",
        {"state": params["state"], "code": "fb-code"},
        follow=True,
    )
    html = pick.content.decode()
    assert "Links A Golf" in html and "Links A Pro Shop" in html
    assert "PAGE-111-TOKEN" not in html
    done = browser.post(pick.redirect_chain[-1][0], {"page": "111"}, follow=True)
    assert "Connected Facebook Page: Links A Golf" in done.content.decode()
    assert Connection.objects.get().access_token == "PAGE-111-TOKEN"


def test_the_list_shows_connections_needing_attention(browser, tenant_a, club_a):
    conn = make_connection(tenant_a, club_a, account_id="x1")
    connection_mark_needs_attention(connection=conn, error="X: token revoked by the user")
    html = browser.get("/admin/social/connection/").content.decode()
    assert "X: token revoked by the user" in html
    assert "NEEDS_ATTENTION" in html or "Needs attention" in html


def test_another_tenant_s_staff_see_nothing_and_cannot_connect_its_clubs(staff_b, tenant_a, club_a):
    conn = make_connection(tenant_a, club_a, account_id="x1")
    outsider = Client()
    outsider.force_login(staff_b)
    assert "acct x1" not in outsider.get("/admin/social/connection/").content.decode()
    assert outsider.get(f"/admin/social/connection/{conn.pk}/change/").status_code in (302, 404)
    response = outsider.post(
        "/admin/social/connection/connect/", {"club": str(club_a.pk), "platform": Platform.X}
    )
    assert response.status_code == 403
    assert Connection.objects.get().status == ConnectionStatus.ACTIVE


def test_connecting_an_account_is_in_the_audit_trail(browser, platform, club_a, tenant_a):
    _, params = _connect(browser, club_a, Platform.X)
    _x_token_ok(platform)
    browser.get("/admin/social/connection/callback/", {"state": params["state"], "code": "c"})
    connection = Connection.objects.get()
    (row,) = AuditEvent.objects.filter(action=AuditAction.SOCIAL_CONNECTED)
    assert (row.tenant_id, row.actor, row.object_id) == (
        tenant_a.pk,
        "staff:anna",
        str(connection.pk),
    )
    assert row.detail["platform"] == Platform.X and row.detail["account"] == "@links"
