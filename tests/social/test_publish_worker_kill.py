"""A real worker publishes 200 due posts to a local fake X server; ``kill -9`` mid-sweep,
restart, and every post is on the account exactly once."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from social.models import Publication, PublicationStatus
from social.posts import post_create, post_schedule
from social.publishers import STALE_AFTER, publications_claim_due
from social.tasks import publish
from tests.factories import ClubFactory, TenantFactory
from tests.worker import WorkerProcess, celery_worker

from .helpers import make_connection

POSTS = 200
pytestmark = pytest.mark.django_db(transaction=True)


class FakeX(ThreadingHTTPServer):
    """``POST /2/tweets`` (a little slow, like the real one) and the account's timeline,
    newest first, paginated like X's (``max_results``, ``next_token``)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.tweets: list[dict] = []

    def count(self) -> int:
        with self.lock:
            return len(self.tweets)


class _Handler(BaseHTTPRequestHandler):
    server: FakeX

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        text = json.loads(self.rfile.read(length))["text"]
        time.sleep(0.03)
        with self.server.lock:
            tweet = {"id": str(1_900_000_000_000 + len(self.server.tweets)), "text": text}
            self.server.tweets.append(tweet)
        self._send(201, {"data": tweet})

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        size = int(query.get("max_results", ["10"])[0])
        start = int(query.get("pagination_token", ["0"])[0])
        with self.server.lock:
            newest_first = list(reversed(self.server.tweets))
        page = newest_first[start : start + size]
        meta = {"result_count": len(page)}
        if start + size < len(newest_first):
            meta["next_token"] = str(start + size)
        self._send(200, {"data": page, "meta": meta})


def _wait(predicate, timeout: float, what: str, worker=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{worker.log()[-3000:] if worker else ''}")


def _sweep(now) -> int:
    """What beat's ``social.publish_due`` does, with the clock the test chooses."""
    claims = publications_claim_due(now=now, limit=POSTS * 2)
    for claim in claims:
        publish.delay(
            claim.tenant_id,
            publication_id=claim.publication_id,
            claim_id=claim.claim_id,
            verify=claim.verify,
        )
    return len(claims)


def _settled(previous: list[int]) -> bool:
    """Nothing has moved for a second: the queue is drained and no run is in flight."""
    now = Publication.objects.filter(status=PublicationStatus.PUBLISHED).count()
    previous.append(now)
    return len(previous) > 10 and previous[-1] == previous[-11]


def test_kill_9_mid_sweep_then_restart_every_post_is_published_exactly_once():
    tenant = TenantFactory(slug="social-kill")
    club = ClubFactory(tenant=tenant)
    conn = make_connection(tenant, club, account_id="x1")
    for i in range(POSTS):
        post = post_create(
            tenant=tenant, club=club, data={"content": f"Tee news #{i}"}, connection_ids=[conn.pk]
        )
        post_schedule(post=post)

    server = FakeX()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        "SOCIAL_BACKEND": "http",
        "SOCIAL_X_API_URL": f"http://127.0.0.1:{server.server_address[1]}",
    }
    try:
        with celery_worker(concurrency=2, env=env) as worker:
            assert _sweep(timezone.now()) == POSTS
            _wait(lambda: server.count() >= 40, 120, "the first 40 posts", worker)
            worker.kill_hard()  # main process and pool children, mid-sweep
            at_kill = server.count()
            assert at_kill < POSTS, "the kill should land mid-sweep"

            restarted = WorkerProcess(worker.queue, concurrency=2, env=env)
            restarted.start()
            try:
                # The restarted worker takes the messages still queued; the ones the dead
                # worker held come back only after the broker's visibility timeout. Once the
                # queue is drained, the sweep runs as if the verify deadline had passed: it
                # checks the account for rows whose outcome was lost, then posts the rest.
                history: list[int] = []
                _wait(lambda: _settled(history), 180, "the queue to drain", restarted)
                _sweep(timezone.now() + STALE_AFTER + timedelta(minutes=1))
                _wait(
                    lambda: (
                        Publication.objects.filter(status=PublicationStatus.PUBLISHED).count()
                        == POSTS
                    ),
                    180,
                    "every post published",
                    restarted,
                )
            finally:
                restarted.stop()
    finally:
        server.shutdown()

    texts = [t["text"] for t in server.tweets]
    assert sorted(texts) == sorted(f"Tee news #{i}" for i in range(POSTS))  # each exactly once
    ids = {t["text"]: t["id"] for t in server.tweets}
    rows = Publication.objects.select_related("post").filter(tenant=tenant)
    assert {r.post.content: r.platform_post_id for r in rows} == ids
    print(f"\nkilled at {at_kill} posts; {len(texts)} posts on the account for {POSTS} rows")
