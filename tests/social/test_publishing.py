"""Publishing on each platform through the due sweep: exactly once across a crash, rate
limits, dead tokens, an Instagram container that is not ready yet, the local backend."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
import time_machine
from django.db import connection as db
from django.db import transaction
from django.utils import timezone

from social.models import Connection, ConnectionStatus, Platform, Publication, PublicationStatus
from social.posts import post_create, post_schedule
from social.publishers import STALE_AFTER, publication_publish, publications_claim_due
from tests.factories import ClubFactory, TenantFactory

from .conftest import graph, x
from .helpers import make_connection

IMAGE = "https://cdn.example/flag.jpg"


class FakeX:
    """X's tweet endpoints with memory: POST /2/tweets stores, the timeline lists."""

    def __init__(self, mock, account_id: str = "x1") -> None:
        self.tweets: list[dict] = []
        self.posts = 0
        self.fail_next: Exception | None = None
        mock.add_callback(responses.POST, x("2/tweets"), callback=self._create)
        mock.add_callback(responses.GET, x(f"2/users/{account_id}/tweets"), callback=self._list)

    def _create(self, request):
        self.posts += 1
        text = json.loads(request.body)["text"]
        tweet = {"id": str(1800000000000000000 + len(self.tweets)), "text": text}
        self.tweets.append(tweet)
        if self.fail_next is not None:  # the platform posted, but the answer is lost
            error, self.fail_next = self.fail_next, None
            raise error
        return (201, {}, json.dumps({"data": tweet}))

    def _list(self, request):
        return (200, {}, json.dumps({"data": list(reversed(self.tweets))}))


def _scheduled(tenant, club, connection, **data):
    post = post_create(
        tenant=tenant,
        club=club,
        data=data or {"content": "Club champs!"},
        connection_ids=[connection.pk],
    )
    post_schedule(post=post)
    return Publication.objects.get(post=post)


def _sweep(now=None):
    """What beat + the workers do: claim, then run each claimed publication."""
    now = now or timezone.now()
    return [
        publication_publish(
            publication_id=c.publication_id, claim_id=c.claim_id, verify=c.verify, now=now
        )
        for c in publications_claim_due(now=now)
    ]


def test_x_publishes_once_and_records_the_post(platform, tenant_a, club_a):
    conn = make_connection(tenant_a, club_a, account_id="x1")
    fake = FakeX(platform)
    publication = _scheduled(tenant_a, club_a, conn, content="Club champs!", hashtags=["golf"])
    assert _sweep() == [PublicationStatus.PUBLISHED]
    assert _sweep() == []
    publication.refresh_from_db()
    assert publication.status == PublicationStatus.PUBLISHED
    assert publication.platform_post_id == fake.tweets[0]["id"]
    assert publication.platform_url.endswith(fake.tweets[0]["id"])
    assert publication.attempts == 1
    assert fake.tweets[0]["text"] == "Club champs!\n\n#golf"
    tweet_call = next(c for c in platform.calls if c.request.method == "POST")
    assert tweet_call.request.headers["Authorization"] == "Bearer access-token-1"
    conn.refresh_from_db()
    assert conn.last_used_at is not None


def test_x_uploads_the_image_then_posts_with_it(platform, tenant_a, club_a):
    conn = make_connection(tenant_a, club_a, account_id="x1")
    publication = _scheduled(tenant_a, club_a, conn, content="Flag", media_urls=[IMAGE])
    platform.get(IMAGE, body=b"\x89PNG fake image", content_type="image/png")
    platform.post(
        x("2/media/upload"),
        json={"data": {"id": "1880028106020515840", "media_key": "3_1880028106020515840"}},
    )
    platform.post(x("2/tweets"), status=201, json={"data": {"id": "55", "text": "Flag"}})
    assert _sweep() == [PublicationStatus.PUBLISHED]
    upload = next(c for c in platform.calls if c.request.url == x("2/media/upload"))
    assert b'name="media_category"' in upload.request.body
    assert b"tweet_image" in upload.request.body
    assert b"\x89PNG fake image" in upload.request.body
    tweet = next(c for c in platform.calls if c.request.url == x("2/tweets"))
    assert json.loads(tweet.request.body) == {
        "text": "Flag",
        "media": {"media_ids": ["1880028106020515840"]},
    }
    publication.refresh_from_db()
    assert publication.platform_post_id == "55"


def test_x_refuses_to_fetch_an_image_from_an_internal_address(platform, tenant_a, club_a):
    conn = make_connection(tenant_a, club_a, account_id="x1")
    publication = _scheduled(
        tenant_a, club_a, conn, content="x", media_urls=["https://169.254.169.254/latest/meta"]
    )
    assert _sweep() == [PublicationStatus.FAILED]
    publication.refresh_from_db()
    assert "public https" in publication.error
    assert not platform.calls


def test_a_crash_after_the_platform_posted_is_verified_not_reposted(platform, tenant_a, club_a):
    conn = make_connection(tenant_a, club_a, account_id="x1")
    fake = FakeX(platform)
    publication = _scheduled(tenant_a, club_a, conn)
    # The worker claims the row, the platform posts, then the worker dies (kill -9): the
    # claim is committed, nothing after it is.
    claims = publications_claim_due()
    assert len(claims) == 1
    fake.tweets.append({"id": "1799", "text": "Club champs!"})
    publication.refresh_from_db()
    assert (publication.status, publication.attempts) == (PublicationStatus.PUBLISHING, 1)
    # Before the deadline nothing touches it (the first worker may still be running).
    assert _sweep() == []
    with time_machine.travel(timezone.now() + STALE_AFTER + timedelta(seconds=1)):
        assert _sweep() == [PublicationStatus.PUBLISHED]
    publication.refresh_from_db()
    assert publication.platform_post_id == "1799"
    assert fake.posts == 0  # never posted again
    assert len(fake.tweets) == 1


def test_a_crash_before_the_call_is_published_once_after_the_check(platform, tenant_a, club_a):
    conn = make_connection(tenant_a, club_a, account_id="x1")
    fake = FakeX(platform)
    publication = _scheduled(tenant_a, club_a, conn)
    publications_claim_due()  # ... and the worker dies before calling X
    with time_machine.travel(timezone.now() + STALE_AFTER + timedelta(seconds=1)):
        assert _sweep() == [PublicationStatus.PUBLISHED]
        assert _sweep() == []
    assert fake.posts == 1
    publication.refresh_from_db()
    assert publication.attempts == 2


def test_a_task_message_delivered_twice_does_nothing_the_second_time(platform, tenant_a, club_a):
    conn = make_connection(tenant_a, club_a, account_id="x1")
    fake = FakeX(platform)
    _scheduled(tenant_a, club_a, conn)
    [claim] = publications_claim_due()
    # The first run gets the post out, then its worker dies before recording it.
    fake.fail_next = RuntimeError("worker killed")
    with pytest.raises(RuntimeError):
        publication_publish(publication_id=claim.publication_id, claim_id=claim.claim_id)
    # The broker delivers the same message again: the claim is spent.
    assert (
        publication_publish(publication_id=claim.publication_id, claim_id=claim.claim_id) == "gone"
    )
    assert fake.posts == 1
    with time_machine.travel(timezone.now() + STALE_AFTER + timedelta(seconds=1)):
        assert _sweep() == [PublicationStatus.PUBLISHED]
    assert fake.posts == 1


def test_the_check_reads_every_page_of_recent_posts(platform, tenant_a, club_a):
    conn = make_connection(tenant_a, club_a, account_id="x1")
    publication = _scheduled(tenant_a, club_a, conn, content="Needle")
    publications_claim_due()
    pages = {
        None: {
            "data": [{"id": str(i), "text": f"other {i}"} for i in range(100)],
            "meta": {"next_token": "p2"},
        },
        "p2": {"data": [{"id": "777", "text": "Needle"}], "meta": {}},
    }

    def timeline(request):
        token = dict(parse_qs(urlsplit(request.url).query)).get("pagination_token", [None])[0]
        return (200, {}, json.dumps(pages[token]))

    platform.add_callback(responses.GET, x("2/users/x1/tweets"), callback=timeline)
    with time_machine.travel(timezone.now() + STALE_AFTER + timedelta(seconds=1)):
        assert _sweep() == [PublicationStatus.PUBLISHED]
    publication.refresh_from_db()
    assert publication.platform_post_id == "777"
    assert not any(c.request.method == "POST" for c in platform.calls)


def test_a_timeout_after_posting_is_checked_before_any_retry(platform, tenant_a, club_a):
    conn = make_connection(tenant_a, club_a, account_id="x1")
    fake = FakeX(platform)
    publication = _scheduled(tenant_a, club_a, conn)
    fake.fail_next = requests.exceptions.ReadTimeout("read timed out")
    assert _sweep() == [PublicationStatus.PUBLISHING]
    with time_machine.travel(timezone.now() + STALE_AFTER + timedelta(seconds=1)):
        assert _sweep() == [PublicationStatus.PUBLISHED]
    assert fake.posts == 1
    assert len(fake.tweets) == 1
    publication.refresh_from_db()
    assert publication.platform_post_id == fake.tweets[0]["id"]


def test_an_unknown_outcome_that_cannot_be_checked_is_held_for_review(platform, tenant_a, club_a):
    conn = make_connection(tenant_a, club_a, account_id="x1")
    publication = _scheduled(tenant_a, club_a, conn)
    publications_claim_due()
    platform.get(x("2/users/x1/tweets"), status=400, json={"title": "Invalid Request"})
    with time_machine.travel(timezone.now() + STALE_AFTER + timedelta(seconds=1)):
        assert _sweep() == [PublicationStatus.NEEDS_REVIEW]
        assert _sweep() == []
    publication.refresh_from_db()
    assert "Held for review" in publication.error
    assert not any(c.request.method == "POST" for c in platform.calls)


def test_x_429_waits_for_the_reset_time(platform, tenant_a, club_a):
    conn = make_connection(tenant_a, club_a, account_id="x1")
    publication = _scheduled(tenant_a, club_a, conn)
    reset = int((timezone.now() + timedelta(minutes=14)).timestamp())
    platform.post(
        x("2/tweets"),
        status=429,
        headers={"x-rate-limit-reset": str(reset), "x-rate-limit-remaining": "0"},
        json={"title": "Too Many Requests", "detail": "Too Many Requests", "status": 429},
    )
    assert _sweep() == [PublicationStatus.SCHEDULED]
    publication.refresh_from_db()
    assert int(publication.next_attempt_at.timestamp()) == reset
    assert "Rate limited" in publication.error
    with time_machine.travel(timezone.now() + timedelta(minutes=13)):
        assert _sweep() == []  # not before the reset
    platform.replace(
        responses.POST, x("2/tweets"), status=201, json={"data": {"id": "42", "text": "x"}}
    )
    with time_machine.travel(timezone.now() + timedelta(minutes=15)):
        assert _sweep() == [PublicationStatus.PUBLISHED]


def test_facebook_expired_token_needs_attention_and_posts_wait(platform, tenant_a, club_a):
    conn = make_connection(
        tenant_a, club_a, platform=Platform.FACEBOOK_PAGE, account_id="111", refresh_token=None
    )
    publication = _scheduled(tenant_a, club_a, conn, content="Hi", link="https://club.example")
    platform.post(
        graph("111/feed"),
        status=400,
        json={
            "error": {
                "message": "Error validating access token: Session has expired.",
                "type": "OAuthException",
                "code": 190,
                "error_subcode": 463,
            }
        },
    )
    assert _sweep() == [PublicationStatus.SCHEDULED]
    conn.refresh_from_db()
    assert conn.status == ConnectionStatus.NEEDS_ATTENTION
    assert "Session has expired" in conn.status_error
    publication.refresh_from_db()
    assert publication.status == PublicationStatus.SCHEDULED
    assert "reconnected" in publication.error
    assert _sweep() == []  # it waits, it does not fail
    # Reconnecting (a new Page token) lets it go.
    make_connection(
        tenant_a,
        club_a,
        platform=Platform.FACEBOOK_PAGE,
        account_id="111",
        access_token="PAGE-NEW",
        refresh_token=None,
    )
    platform.replace(responses.POST, graph("111/feed"), json={"id": "111_999"})
    assert _sweep() == [PublicationStatus.PUBLISHED]
    body = parse_qs(platform.calls[-1].request.body)
    assert body["access_token"] == ["PAGE-NEW"]
    assert body["link"] == ["https://club.example"]


def test_facebook_photo_post(platform, tenant_a, club_a):
    conn = make_connection(
        tenant_a, club_a, platform=Platform.FACEBOOK_PAGE, account_id="111", refresh_token=None
    )
    publication = _scheduled(tenant_a, club_a, conn, content="Flag", media_urls=[IMAGE])
    platform.post(graph("111/photos"), json={"id": "555", "post_id": "111_555"})
    assert _sweep() == [PublicationStatus.PUBLISHED]
    publication.refresh_from_db()
    assert publication.platform_post_id == "111_555"
    assert parse_qs(platform.calls[0].request.body)["url"] == [IMAGE]


def test_instagram_waits_for_the_container_then_publishes_once(platform, tenant_a, club_a):
    conn = make_connection(
        tenant_a, club_a, platform=Platform.INSTAGRAM, account_id="1784", refresh_token=None
    )
    publication = _scheduled(tenant_a, club_a, conn, content="Champs", media_urls=[IMAGE])
    platform.post(graph("1784/media"), json={"id": "C1"})
    platform.get(graph("C1"), json={"status_code": "IN_PROGRESS", "id": "C1"})
    assert _sweep() == [PublicationStatus.SCHEDULED]
    publication.refresh_from_db()
    assert (publication.status, publication.container_id) == (PublicationStatus.SCHEDULED, "C1")
    assert _sweep() == []  # polled again after POLL_DELAY, not at once
    platform.replace(responses.GET, graph("C1"), json={"status_code": "FINISHED", "id": "C1"})
    platform.post(graph("1784/media_publish"), json={"id": "M1"})
    platform.get(graph("M1"), json={"permalink": "https://www.instagram.com/p/abc/", "id": "M1"})
    with time_machine.travel(timezone.now() + timedelta(seconds=31)):
        assert _sweep() == [PublicationStatus.PUBLISHED]
    publication.refresh_from_db()
    assert publication.platform_post_id == "M1"
    assert publication.platform_url == "https://www.instagram.com/p/abc/"
    container_posts = [c for c in platform.calls if c.request.url.endswith("/1784/media")]
    assert len(container_posts) == 1  # one container, reused
    publish_calls = [c for c in platform.calls if "media_publish" in c.request.url]
    assert parse_qs(publish_calls[0].request.body)["creation_id"] == ["C1"]


def test_instagram_publishing_cap_waits(platform, tenant_a, club_a):
    conn = make_connection(
        tenant_a, club_a, platform=Platform.INSTAGRAM, account_id="1784", refresh_token=None
    )
    publication = _scheduled(tenant_a, club_a, conn, content="Champs", media_urls=[IMAGE])
    platform.post(graph("1784/media"), json={"id": "C1"})
    platform.get(graph("C1"), json={"status_code": "FINISHED"})
    platform.post(
        graph("1784/media_publish"),
        status=400,
        json={
            "error": {
                "message": "Application request limit reached",
                "code": 9,
                "error_subcode": 2207042,
            }
        },
    )
    assert _sweep() == [PublicationStatus.SCHEDULED]
    publication.refresh_from_db()
    assert publication.next_attempt_at > timezone.now() + timedelta(minutes=10)


def test_a_refused_post_fails_with_the_platform_s_words(platform, tenant_a, club_a):
    conn = make_connection(tenant_a, club_a, account_id="x1")
    publication = _scheduled(tenant_a, club_a, conn)
    platform.post(
        x("2/tweets"),
        status=403,
        json={"detail": "You are not allowed to create a Tweet with duplicate content."},
    )
    assert _sweep() == [PublicationStatus.FAILED]
    publication.refresh_from_db()
    assert "duplicate content" in publication.error


def test_an_expired_x_token_is_refreshed_before_posting(platform, tenant_a, club_a):
    conn = make_connection(
        tenant_a, club_a, account_id="x1", token_expires_at=timezone.now() - timedelta(minutes=1)
    )
    _scheduled(tenant_a, club_a, conn)
    platform.post(
        x("2/oauth2/token"),
        json={"access_token": "fresh", "refresh_token": "r2", "expires_in": 7200},
    )
    fake = FakeX(platform)
    assert _sweep() == [PublicationStatus.PUBLISHED]
    tweet_call = next(c for c in platform.calls if c.request.url == x("2/tweets"))
    assert tweet_call.request.headers["Authorization"] == "Bearer fresh"
    assert fake.posts == 1


def test_the_local_backend_records_without_calling_anyone(settings, platform, tenant_a, club_a):
    settings.SOCIAL_BACKEND = "local"
    conn = make_connection(tenant_a, club_a, account_id="x1")
    publication = _scheduled(tenant_a, club_a, conn)
    assert _sweep() == [PublicationStatus.PUBLISHED]
    publication.refresh_from_db()
    assert publication.platform_post_id == f"local-{publication.pk}"
    assert len(platform.calls) == 0


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_claim_each_row_once(platform):
    tenant = TenantFactory(slug="sweep")
    club = ClubFactory(tenant=tenant)
    conn = make_connection(tenant, club, account_id="x1")
    for i in range(30):
        _scheduled(tenant, club, conn, content=f"post {i}")
    claimed: list[int] = []

    def sweeper():
        try:
            claimed.extend(c.publication_id for c in publications_claim_due(limit=20))
        finally:
            db.close()

    threads = [threading.Thread(target=sweeper) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(claimed) == sorted(set(claimed))
    assert len(claimed) == 30
    assert Connection.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_publisher_waits_while_another_refresher_holds_the_token(platform):
    tenant = TenantFactory(slug="refreshing")
    club = ClubFactory(tenant=tenant)
    conn = make_connection(
        tenant, club, account_id="x1", token_expires_at=timezone.now() - timedelta(minutes=1)
    )
    publication = _scheduled(tenant, club, conn)
    locked, release = threading.Event(), threading.Event()

    def refresher_holding_the_row():
        try:
            with transaction.atomic():
                # What connection_refresh takes: FOR NO KEY UPDATE.
                Connection.objects.select_for_update(no_key=True).get(pk=conn.pk)
                locked.set()
                release.wait(10)
        finally:
            db.close()

    holder = threading.Thread(target=refresher_holding_the_row)
    holder.start()
    assert locked.wait(10)
    try:
        assert _sweep() == [PublicationStatus.SCHEDULED]
    finally:
        release.set()
        holder.join(10)
    conn.refresh_from_db()
    assert conn.status == ConnectionStatus.ACTIVE  # not blamed on the account
    publication.refresh_from_db()
    assert "being refreshed" in publication.error
    assert not platform.calls  # neither X's token endpoint nor a post with a dead token
