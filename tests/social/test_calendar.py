"""The admin calendar of publications: each on its local day in the tenant's timezone
(across a daylight-saving change), filtered by club and platform, never another tenant's."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.test import Client

from social.models import Platform, Post, Publication, PublicationStatus
from tests.factories import ClubFactory

from .helpers import make_connection


@pytest.fixture
def browser(staff_a):
    client = Client()
    client.force_login(staff_a)
    return client


@pytest.fixture
def london(tenant_a):
    tenant_a.timezone = "Europe/London"
    tenant_a.save(update_fields=["timezone"])
    return tenant_a


def _publish(tenant, connection, text, *, at, status=PublicationStatus.SCHEDULED):
    post = Post.objects.create(tenant=tenant, club=connection.club, content=text)
    published = at if status == PublicationStatus.PUBLISHED else None
    return Publication.objects.create(
        tenant=tenant,
        post=post,
        connection=connection,
        status=status,
        scheduled_at=at,
        next_attempt_at=at,
        published_at=published,
    )


def _days(html: str) -> dict[str, list[tuple[str, str]]]:
    """Local day -> (status, text) of each publication shown in its cell."""
    cells = re.findall(r'data-day="([\d-]+)">(.*?)</td>', html, re.S)
    found: dict[str, list[tuple[str, str]]] = {}
    for day, cell in cells:
        for status, text in re.findall(r'data-status="(\w+)".*?>\s*(.*?)\s*</a>', cell, re.S):
            found.setdefault(day, []).append((status, " ".join(text.split())))
    return found


def test_posts_show_on_their_local_day_across_the_dst_change(
    browser, london, club_a, tenant_b, club_b
):
    x = make_connection(london, club_a, platform=Platform.X, account_id="x1")
    # 27 March 23:30 UTC is 23:30 GMT on the 27th; 28 March 23:30 UTC is already
    # 00:30 BST on the 29th (the clocks went forward on the 28th).
    _publish(london, x, "Saturday night", at=datetime(2027, 3, 27, 23, 30, tzinfo=UTC))
    _publish(london, x, "After the change", at=datetime(2027, 3, 28, 23, 30, tzinfo=UTC))
    _publish(
        london,
        x,
        "Went out",
        at=datetime(2027, 3, 2, 8, 0, tzinfo=UTC),
        status=PublicationStatus.PUBLISHED,
    )
    # 31 March 23:30 UTC is 1 April in London: next month, not shown in March.
    _publish(london, x, "April fool", at=datetime(2027, 3, 31, 23, 30, tzinfo=UTC))
    theirs = make_connection(tenant_b, club_b, platform=Platform.X, account_id="b1")
    _publish(tenant_b, theirs, "Their post", at=datetime(2027, 3, 27, 12, 0, tzinfo=UTC))

    response = browser.get("/admin/social/post/calendar/?month=2027-03")
    assert response.status_code == 200
    html = response.content.decode()
    days = _days(html)
    assert days == {
        "2027-03-02": [("PUBLISHED", "08:00 X: Went out")],
        "2027-03-27": [("SCHEDULED", "23:30 X: Saturday night")],
        "2027-03-29": [("SCHEDULED", "00:30 X: After the change")],
    }
    assert "Their post" not in html
    post_id = Publication.objects.get(post__content="Saturday night").post_id
    assert f"/admin/social/post/{post_id}/change/" in html
    april = _days(browser.get("/admin/social/post/calendar/?month=2027-04").content.decode())
    assert april["2027-04-01"] == [("SCHEDULED", "00:30 X: April fool")]


def test_the_calendar_filters_by_club_and_platform(browser, london, club_a):
    other_club = ClubFactory(tenant=london, name="Second Club")
    x = make_connection(london, club_a, platform=Platform.X, account_id="x1")
    fb = make_connection(
        london, other_club, platform=Platform.FACEBOOK_PAGE, account_id="p1", refresh_token=None
    )
    when = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)
    _publish(london, x, "On X", at=when)
    _publish(london, fb, "On Facebook", at=when)

    by_club = _days(
        browser.get(
            f"/admin/social/post/calendar/?month=2027-03&club={other_club.pk}"
        ).content.decode()
    )
    assert by_club == {"2027-03-10": [("SCHEDULED", "12:00 Facebook Page: On Facebook")]}
    by_platform = _days(
        browser.get("/admin/social/post/calendar/?month=2027-03&platform=X").content.decode()
    )
    assert by_platform == {"2027-03-10": [("SCHEDULED", "12:00 X: On X")]}


def test_another_tenant_s_staff_see_only_their_own(staff_b, london, club_a, club_b, tenant_b):
    x = make_connection(london, club_a, platform=Platform.X, account_id="x1")
    _publish(london, x, "Ours", at=datetime(2027, 3, 10, 12, 0, tzinfo=UTC))
    client = Client()
    client.force_login(staff_b)
    # Even asking for tenant A or its club by id shows tenant B's (empty) calendar.
    response = client.get(
        f"/admin/social/post/calendar/?month=2027-03&tenant={london.pk}&club={club_a.pk}"
    )
    assert response.status_code == 200
    assert _days(response.content.decode()) == {}
    assert "Ours" not in response.content.decode()


def test_bad_filters_fall_back_instead_of_failing(browser, london):
    response = browser.get("/admin/social/post/calendar/?month=2027-13&platform=MYSPACE&club=x")
    assert response.status_code == 200
