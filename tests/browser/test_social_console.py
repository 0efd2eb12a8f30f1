"""The social console in a real browser: connect a Facebook Page (the platform's login is
faked: its dialog by a Playwright route, its API by ``responses``), and see a connection
that needs attention."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from social.connections import connection_mark_needs_attention
from social.models import Connection, Platform, Post
from tests.factories import ClubFactory, StaffMembershipFactory, TenantFactory, UserFactory
from tests.social.conftest import DIALOG, _platforms, platform  # noqa: F401  (the fakes)
from tests.social.helpers import make_connection
from tests.social.test_connections import _meta_tokens

PASSWORD = "correct-horse-battery"


@pytest.fixture
def club(transactional_db):
    tenant = TenantFactory(slug="links-a", name="Links A Golf")
    StaffMembershipFactory(tenant=tenant, user=UserFactory(username="anna"))
    return ClubFactory(tenant=tenant, name="Links A Country Club")


def _login(page, base_url: str) -> None:
    page.goto(f"{base_url}/admin/login/")
    page.fill("input[name=username]", "anna")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_load_state("networkidle")


def test_connect_a_facebook_page_from_the_console(page, live_server, club, platform):  # noqa: F811
    _meta_tokens(platform)

    def facebook_dialog(route):
        # The person logs in and approves: Facebook sends the browser back with a code.
        query = parse_qs(urlsplit(route.request.url).query)
        back = (
            query["redirect_uri"][0]
            + "?"
            + urlencode({"code": "fb-code", "state": query["state"][0]})
        )
        route.fulfill(status=302, headers={"Location": back})

    page.route(f"{DIALOG}/**", facebook_dialog)
    _login(page, live_server.url)
    page.goto(f"{live_server.url}/admin/social/connection/")
    page.click("[data-testid=connect-account]")
    page.click(f"[data-testid=connect-{Platform.FACEBOOK_PAGE}]")
    page.wait_for_selector("[data-testid=social-pick]")
    options = page.locator("[data-testid=page-option]").all_inner_texts()
    assert any("Links A Golf" in text for text in options)
    page.check("input[name=page][value='111']")
    page.click("button:has-text('Connect')")
    page.wait_for_load_state("networkidle")
    assert "Connected Facebook Page: Links A Golf" in page.locator("body").inner_text()
    assert Connection.objects.get().access_token == "PAGE-111-TOKEN"


def test_a_connection_that_needs_attention_is_shown(page, live_server, club):
    conn = make_connection(club.tenant, club, account_id="x1")
    connection_mark_needs_attention(connection=conn, error="X: the user revoked the app")
    _login(page, live_server.url)
    page.goto(f"{live_server.url}/admin/social/connection/")
    body = page.locator("#result_list, table").first.inner_text()
    assert "X: the user revoked the app" in body
    assert "NEEDS" in body.upper()


def test_compose_shows_live_counts_and_schedules(page, live_server, club):
    conn = make_connection(club.tenant, club, account_id="x1")
    _login(page, live_server.url)
    page.goto(f"{live_server.url}/admin/social/post/")
    page.click("[data-testid=compose-post]")
    page.check(f"input[name=connections][value='{conn.pk}']")
    page.fill("[data-testid=compose-content]", "ゴルフ see https://example.com/a/very/long/path")
    counts = page.locator("[data-testid=compose-counts]").inner_text()
    assert "34 / 280" in counts  # 3 CJK x 2 + " see " 5 + link 23
    assert "needs an image" in counts
    page.fill("[data-testid=compose-content]", "a" * 281)
    assert "too long" in page.locator("[data-testid=compose-counts]").inner_text()
    page.click("button:has-text('Schedule')")
    page.wait_for_load_state("networkidle")
    body = page.locator("body").inner_text()
    assert "Saved as a draft" in body and "this post counts 281" in body
    post = Post.objects.get()
    assert post.publications.get().status == "DRAFT"


def test_compose_refuses_bad_fields_and_keeps_what_was_typed(page, live_server, club):
    conn = make_connection(club.tenant, club, account_id="x1")
    _login(page, live_server.url)
    page.goto(f"{live_server.url}/admin/social/post/compose/")
    page.check(f"input[name=connections][value='{conn.pk}']")
    page.fill("[data-testid=compose-content]", "Club champs")
    page.fill("input[name=link]", "javascript:alert(1)")
    page.click("button:has-text('Schedule')")
    page.wait_for_load_state("networkidle")
    assert "An http(s) URL" in page.locator("[data-testid=compose-errors]").inner_text()
    assert page.locator("[data-testid=compose-content]").input_value() == "Club champs"
    assert not Post.objects.exists()


def test_compose_previews_the_post_on_each_ticked_platform(page, live_server, club):
    x = make_connection(club.tenant, club, account_id="x1")
    ig = make_connection(
        club.tenant, club, platform=Platform.INSTAGRAM, account_id="ig1", refresh_token=None
    )
    _login(page, live_server.url)
    page.goto(f"{live_server.url}/admin/social/post/compose/")
    preview = page.locator("[data-testid=compose-preview]")
    assert "Tick an account" in preview.inner_text()
    page.check(f"input[name=connections][value='{x.pk}']")
    page.check(f"input[name=connections][value='{ig.pk}']")
    page.fill("[data-testid=compose-content]", "ゴルフ see https://example.com/a/very/long/path")
    page.fill("input[name=link]", "https://club.example/comp")
    x_card = page.locator("[data-preview=X]")
    # 34 as above, then the link after a blank line: 2 newlines + 23, as the server counts.
    assert "59 / 280" in x_card.inner_text()
    assert "long/path\n\nhttps://club.example/comp" in x_card.inner_text()
    assert "Link card: club.example" in x_card.inner_text()
    ig_card = page.locator("[data-preview=INSTAGRAM]")
    assert "Needs an image" in ig_card.inner_text()
    assert page.locator("[data-preview=FACEBOOK_PAGE]").is_hidden()
    # Too long for X: the preview cuts it and says so; an image clears Instagram's warning.
    page.fill("[data-testid=compose-content]", "a" * 300)
    page.fill("textarea[name=media_urls]", "https://club.example/poster.jpg")
    assert "Too long: X counts" in x_card.inner_text()
    assert "1 image" in ig_card.inner_text()
    assert "Needs an image" not in ig_card.inner_text()
    # What staff type is shown as text, never run as HTML.
    page.fill("[data-testid=compose-content]", "<b>bold</b>")
    assert "<b>bold</b>" in x_card.locator("[data-preview-text]").inner_text()
    page.uncheck(f"input[name=connections][value='{ig.pk}']")
    assert ig_card.is_hidden()
