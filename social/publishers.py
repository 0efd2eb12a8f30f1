"""Publishing: the due sweep, one publisher per platform, and never posting twice.

The sweep (``publications_claim_due``, beat every minute) claims due rows ``FOR UPDATE
SKIP LOCKED`` and, in its own commit *before any platform call*, marks each PUBLISHING
with ``attempts + 1``, ``claimed_at`` and a verify deadline in ``next_attempt_at``
(``now + STALE_AFTER``). Then ``publication_publish`` (one task per claim) calls the
platform and records the outcome. Each claim carries a single-use token (``claim_id``): the
task swaps it for its own before calling the platform and writes the outcome only while the
row still holds its token, so a redelivered task message, or a late writer after a newer
claim, does nothing.

When the outcome is unknown (the worker died after the claim, a timeout, a 5xx), the row
stays PUBLISHING; once its deadline passes the sweep claims it again *to verify*: the
publisher looks for the post on the platform (X: the account's recent posts; Facebook: the
Page feed; Instagram: the container's status and the account's media) and records it as
PUBLISHED if found, publishes it if the platform proves it absent, and holds it as
NEEDS_REVIEW (staff decide) if the platform cannot be checked or the attempts are spent.

Other outcomes: a rate limit (X 429 with ``x-rate-limit-reset``, Meta's throttling codes,
the Instagram publishing cap) puts the row back to SCHEDULED at the platform's reset time;
a dead token moves the connection to NEEDS_ATTENTION and the row back to SCHEDULED, where
it waits (the sweep only takes rows of ACTIVE connections); an Instagram container not yet
FINISHED is polled again in ``POLL_DELAY``; any other refusal is FAILED.

Backends (``SOCIAL_BACKEND``): ``local`` records the post (id ``local-<pk>``) and calls
nothing, so ``make run`` demos work without credentials; ``http`` calls the platforms at
the base URLs in settings.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, PositiveSmallIntegerField, When
from django.utils import timezone

from .connections import (
    PlatformError,
    connection_mark_needs_attention,
    connection_refresh,
    graph_error,
    graph_url,
    x_url,
)
from .models import Connection, ConnectionStatus, Platform, Publication, PublicationStatus
from .posts import post_text

logger = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=10)
POLL_DELAY = timedelta(seconds=30)
DEFAULT_THROTTLE = timedelta(minutes=15)
MAX_ATTEMPTS = 5
MAX_LOOKUP_PAGES = 5
X_MAX_IMAGE_BYTES = 5 * 1024 * 1024
CLAIM_BATCH = 50
# Meta's throttling error codes (app, user, page, custom, Instagram publishing cap).
GRAPH_RATE_LIMIT_CODES = {4, 17, 32, 613, 80001, 9}
INSTAGRAM_CAP_SUBCODE = 2207042


@dataclass(frozen=True)
class Published:
    post_id: str
    url: str


@dataclass(frozen=True)
class NotYet:
    """Instagram: the container is still being processed."""


@dataclass(frozen=True)
class Claim:
    publication_id: int
    tenant_id: str
    claim_id: str
    verify: bool


# --- publishers ------------------------------------------------------------------------------


class LocalPublisher:
    """Records the post and calls nothing (``SOCIAL_BACKEND=local``)."""

    def publish(self, publication: Publication) -> Published | NotYet:
        logger.info(
            "local social backend: %s post %s: %s",
            publication.connection.platform,
            publication.pk,
            post_text(publication.post, publication.connection.platform)[:80],
        )
        return Published(f"local-{publication.pk}", "")

    def find(self, publication: Publication) -> Published | None:
        return None  # nothing left the machine, so an unknown outcome is "not posted"


def _window_start(publication: Publication) -> datetime:
    """The earliest time the post can have gone out: it fell due at ``scheduled_at`` and
    was first claimed no earlier (a margin covers clocks that disagree a little)."""
    due = publication.scheduled_at or publication.claimed_at or timezone.now()
    return due - timedelta(minutes=5)


def _refuse_internal(url: str) -> None:
    """The CRM fetches X images itself: only https, never a loopback, private or
    link-local address written into the URL (staff write these URLs; this is not a full
    SSRF guard, DNS names are not resolved here)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host or host == "localhost" or host.endswith(".local"):
        raise PlatformError(f"Images must be public https URLs: {url}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    if not address.is_global:
        raise PlatformError(f"Images must be public https URLs: {url}")


def _normalised(text: str) -> str:
    # Platforms rewrite links (X: t.co) and whitespace; compare what is left.
    return " ".join(re.sub(r"https?://\S+", "", text).split())


def _graph_call(method: str, path: str, *, now: datetime, **kwargs: Any) -> dict[str, Any]:
    try:
        response = requests.request(
            method, graph_url(path), timeout=settings.SOCIAL_HTTP_TIMEOUT, **kwargs
        )
    except requests.RequestException as exc:
        raise PlatformError(f"Facebook unreachable: {exc}", unknown_outcome=True) from exc
    if response.status_code < 400:
        return response.json()
    error = graph_error(response)
    try:
        body = response.json().get("error", {})
    except ValueError:
        body = {}
    if body.get("code") in GRAPH_RATE_LIMIT_CODES or (
        body.get("error_subcode") == INSTAGRAM_CAP_SUBCODE
    ):
        error.retry_at = now + DEFAULT_THROTTLE
        error.token_invalid = False
    raise error


class FacebookPublisher:
    """A Page feed post (text and link) or a photo post, with the Page token."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def publish(self, publication: Publication) -> Published | NotYet:
        conn, post = publication.connection, publication.post
        text = post_text(post, Platform.FACEBOOK_PAGE)
        if post.media_urls:
            caption = "\n\n".join(part for part in (text, post.link) if part)
            data = {"url": post.media_urls[0], "caption": caption}
            body = self._call("POST", f"{conn.account_id}/photos", conn, data=data)
            post_id = body.get("post_id") or body["id"]
        else:
            data = {"message": text, **({"link": post.link} if post.link else {})}
            post_id = self._call("POST", f"{conn.account_id}/feed", conn, data=data)["id"]
        return Published(str(post_id), f"https://www.facebook.com/{post_id}")

    def find(self, publication: Publication) -> Published | None:
        conn = publication.connection
        wanted = _normalised(post_text(publication.post, Platform.FACEBOOK_PAGE))
        params: dict[str, Any] = {
            "fields": "id,message,created_time,permalink_url",
            "since": int(_window_start(publication).timestamp()),
            "limit": 100,
        }
        for item in self._pages(f"{conn.account_id}/feed", conn, params):
            if _normalised(item.get("message", "")) == wanted:
                url = item.get("permalink_url") or f"https://www.facebook.com/{item['id']}"
                return Published(str(item["id"]), url)
        return None

    def _pages(self, path: str, conn: Connection, params: dict[str, Any]) -> Any:
        """Every item of a Graph list, following ``paging.cursors.after``; a list longer
        than ``MAX_LOOKUP_PAGES`` cannot be checked (an error: the row is held)."""
        for _ in range(MAX_LOOKUP_PAGES):
            body = self._call("GET", path, conn, params=dict(params))
            yield from body.get("data", [])
            after = (body.get("paging") or {}).get("cursors", {}).get("after")
            if not after or not (body.get("paging") or {}).get("next"):
                return
            params["after"] = after
        raise PlatformError("Too many recent posts to check; look at the account.")

    def _call(self, method: str, path: str, conn: Connection, **kwargs: Any) -> dict[str, Any]:
        key = "data" if method == "POST" else "params"
        kwargs[key] = {**kwargs.get(key, {}), "access_token": conn.access_token}
        return _graph_call(method, path, now=self.now, **kwargs)


class InstagramPublisher(FacebookPublisher):
    """Container → status FINISHED → ``media_publish``, with the linked Page's token. The
    container id is committed before the status checks, so a retry never makes a second."""

    def publish(self, publication: Publication) -> Published | NotYet:
        conn, post = publication.connection, publication.post
        if not publication.container_id:
            body = self._call(
                "POST",
                f"{conn.account_id}/media",
                conn,
                data={
                    "image_url": post.media_urls[0],
                    "caption": post_text(post, Platform.INSTAGRAM),
                },
            )
            publication.container_id = str(body["id"])
            Publication.objects.filter(pk=publication.pk).update(
                container_id=publication.container_id
            )
        status = self._container_status(publication)
        if status in ("IN_PROGRESS", ""):
            return NotYet()
        if status in ("ERROR", "EXPIRED"):
            Publication.objects.filter(pk=publication.pk).update(container_id="")
            raise PlatformError(f"Instagram could not process the image (container {status}).")
        if status == "PUBLISHED":
            found = self.find(publication)
            if found:
                return found
        body = self._call(
            "POST",
            f"{conn.account_id}/media_publish",
            conn,
            data={"creation_id": publication.container_id},
        )
        media_id = str(body["id"])
        return Published(media_id, self._permalink(media_id, conn))

    def _container_status(self, publication: Publication) -> str:
        body = self._call(
            "GET",
            publication.container_id,
            publication.connection,
            params={"fields": "status_code"},
        )
        return str(body.get("status_code", ""))

    def _permalink(self, media_id: str, conn: Connection) -> str:
        try:
            return self._call("GET", media_id, conn, params={"fields": "permalink"}).get(
                "permalink", ""
            )
        except PlatformError:
            return ""  # published all the same; the link is a nicety

    def find(self, publication: Publication) -> Published | None:
        if not publication.container_id:
            return None  # media_publish needs a container we would have recorded first
        if self._container_status(publication) != "PUBLISHED":
            return None
        conn = publication.connection
        wanted = _normalised(post_text(publication.post, Platform.INSTAGRAM))
        params = {"fields": "id,caption,timestamp,permalink", "limit": 100}
        for item in self._pages(f"{conn.account_id}/media", conn, params):
            if _normalised(item.get("caption", "")) == wanted:
                return Published(str(item["id"]), item.get("permalink", ""))
        raise PlatformError("Instagram says the container was published; its media is not found.")


class XPublisher:
    """``POST /2/tweets`` with the account's OAuth 2.0 user token (refreshed first when it
    has expired)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def publish(self, publication: Publication) -> Published | NotYet:
        text = post_text(publication.post, Platform.X)
        payload: dict[str, Any] = {"text": text}
        media_ids = [self._upload(publication, url) for url in publication.post.media_urls[:4]]
        if media_ids:
            payload["media"] = {"media_ids": media_ids}
        body = self._call("POST", "2/tweets", publication, json=payload)
        tweet_id = str(body["data"]["id"])
        return Published(tweet_id, f"https://x.com/i/web/status/{tweet_id}")

    def find(self, publication: Publication) -> Published | None:
        """The account's posts since the publication fell due, page by page."""
        wanted = _normalised(post_text(publication.post, Platform.X))
        params: dict[str, Any] = {
            "max_results": 100,
            "start_time": _window_start(publication).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tweet.fields": "created_at,text",
        }
        path = f"2/users/{publication.connection.account_id}/tweets"
        for _ in range(MAX_LOOKUP_PAGES):
            body = self._call("GET", path, publication, params=dict(params))
            for tweet in body.get("data", []):
                if _normalised(tweet.get("text", "")) == wanted:
                    return Published(str(tweet["id"]), f"https://x.com/i/web/status/{tweet['id']}")
            token = (body.get("meta") or {}).get("next_token")
            if not token:
                return None
            params["pagination_token"] = token
        raise PlatformError("Too many recent posts to check; look at the account.")

    def _upload(self, publication: Publication, url: str) -> str:
        """Fetch the image and upload it (``POST /2/media/upload``, ``media.write``). An
        upload left unused by a failed post is harmless: X discards it."""
        _refuse_internal(url)
        try:
            # No redirects: a public address must not bounce the fetch to an internal one.
            response = requests.get(
                url, timeout=settings.SOCIAL_HTTP_TIMEOUT, allow_redirects=False
            )
            response.raise_for_status()
        except requests.RequestException as exc:
            raise PlatformError(
                f"Could not fetch the image {url}: {exc}", retry_at=self.now + DEFAULT_THROTTLE
            ) from exc
        if len(response.content) > X_MAX_IMAGE_BYTES:
            raise PlatformError(f"X takes images up to 5 MB; {url} is larger.")
        content_type = response.headers.get("Content-Type", "application/octet-stream")
        body = self._call(
            "POST",
            "2/media/upload",
            publication,
            files={"media": (url.rsplit("/", 1)[-1] or "image", response.content, content_type)},
            data={"media_category": "tweet_image"},
        )
        return str(body["data"]["id"])

    def _token(self, publication: Publication) -> str:
        conn = publication.connection
        if conn.token_expires_at and conn.token_expires_at <= self.now:
            connection_refresh(connection_id=conn.pk, now=self.now, force=True)
            conn.refresh_from_db()
            if conn.status != ConnectionStatus.ACTIVE:
                raise PlatformError(conn.status_error or "X token expired.", token_invalid=True)
            if conn.token_expires_at and conn.token_expires_at <= self.now:
                # Another refresher holds the row (or X was unreachable): try again shortly
                # rather than calling X with a dead token.
                raise PlatformError("X token is being refreshed.", retry_at=self.now + POLL_DELAY)
        return conn.access_token

    def _call(self, method: str, path: str, publication: Publication, **kwargs: Any) -> dict:
        headers = {"Authorization": f"Bearer {self._token(publication)}"}
        try:
            response = requests.request(
                method, x_url(path), headers=headers, timeout=settings.SOCIAL_HTTP_TIMEOUT, **kwargs
            )
        except requests.RequestException as exc:
            raise PlatformError(f"X unreachable: {exc}", unknown_outcome=True) from exc
        if response.status_code < 400:
            return response.json()
        try:
            detail = response.json()
        except ValueError:
            detail = {}
        message = f"X: {detail.get('detail') or detail.get('title') or response.status_code}"
        if response.status_code == 429:
            reset = response.headers.get("x-rate-limit-reset")
            retry_at = (
                datetime.fromtimestamp(int(reset), tz=UTC)
                if reset and reset.isdigit()
                else self.now + DEFAULT_THROTTLE
            )
            raise PlatformError(message, status=429, retry_at=retry_at)
        raise PlatformError(
            message,
            status=response.status_code,
            token_invalid=response.status_code == 401,
            unknown_outcome=response.status_code >= 500,
        )


def get_publisher(platform: str, *, now: datetime) -> Any:
    if settings.SOCIAL_BACKEND == "local":
        return LocalPublisher()
    if platform == Platform.X:
        return XPublisher(now)
    if platform == Platform.INSTAGRAM:
        return InstagramPublisher(now)
    return FacebookPublisher(now)


# --- the sweep and one publish -----------------------------------------------------------------


def publications_claim_due(*, now: datetime | None = None, limit: int = CLAIM_BATCH) -> list[Claim]:
    """Claim due publications of active connections, committing the attempt before any
    platform call. SCHEDULED rows are claimed to publish; PUBLISHING rows past their
    deadline (outcome unknown) to verify."""
    now = now or timezone.now()
    with transaction.atomic():
        rows = list(
            Publication.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                status__in=[PublicationStatus.SCHEDULED, PublicationStatus.PUBLISHING],
                next_attempt_at__lte=now,
                connection__status=ConnectionStatus.ACTIVE,
            )
            .order_by("next_attempt_at", "pk")
            .values_list("pk", "tenant_id", "status")[:limit]
        )
        if not rows:
            return []
        claim_id = uuid.uuid4()
        scheduled = [pk for pk, _, status in rows if status == PublicationStatus.SCHEDULED]
        # One UPDATE per row per transaction: a second one would make PostgreSQL re-check
        # the row's foreign keys at commit (KEY SHARE on the connection).
        Publication.objects.filter(pk__in=[pk for pk, _, _ in rows]).update(
            status=PublicationStatus.PUBLISHING,
            claim_id=claim_id,
            claimed_at=now,
            next_attempt_at=now + STALE_AFTER,
            # Only a real publish attempt counts; a verification is not a second post.
            attempts=Case(
                When(pk__in=scheduled, then=F("attempts") + 1),
                default=F("attempts"),
                output_field=PositiveSmallIntegerField(),
            ),
            updated_at=now,
        )
    return [
        Claim(pk, str(tenant_id), str(claim_id), status == PublicationStatus.PUBLISHING)
        for pk, tenant_id, status in rows
    ]


def _record(publication: Publication, now: datetime, **fields: Any) -> int:
    """Write the outcome unless another claim took the row since (guard on claim_id)."""
    return Publication.objects.filter(
        pk=publication.pk,
        status=PublicationStatus.PUBLISHING,
        claim_id=publication.claim_id,
    ).update(updated_at=now, **fields)


def publication_publish(
    *,
    publication_id: int,
    claim_id: str,
    verify: bool = False,
    now: datetime | None = None,
) -> str:
    """Publish (or, after an unknown outcome, verify then publish) one claimed publication.
    The claim is spent first: its token is swapped for this run's in one UPDATE, so a
    second delivery of the same task message finds no row and does nothing. Returns the
    status it ends in ("gone": not this run's to do)."""
    now = now or timezone.now()
    mine = uuid.uuid4()
    taken = Publication.objects.filter(
        pk=publication_id, status=PublicationStatus.PUBLISHING, claim_id=claim_id
    ).update(claim_id=mine, next_attempt_at=now + STALE_AFTER)
    # (The verify deadline restarts now: no sweep takes the row while this run is at it.)
    if not taken:
        return "gone"
    publication = Publication.objects.select_related("connection", "post").get(pk=publication_id)
    publisher = get_publisher(publication.connection.platform, now=now)
    if verify:
        try:
            found = publisher.find(publication)
        except PlatformError as exc:
            return _verify_failed(publication, exc, now)
        if found is not None:
            return _published(publication, found, now)
        if publication.attempts >= MAX_ATTEMPTS:
            return _hold(publication, now, "Attempts spent; the platform shows no such post.")
        # The platform shows no such post: a new attempt, counted before the call.
        Publication.objects.filter(pk=publication.pk).update(attempts=F("attempts") + 1)
        publication.attempts += 1
    try:
        result = publisher.publish(publication)
    except PlatformError as exc:
        return _failed(publication, exc, now)
    if isinstance(result, NotYet):
        _record(
            publication,
            now,
            status=PublicationStatus.SCHEDULED,
            next_attempt_at=now + POLL_DELAY,
            error="Instagram is processing the image.",
        )
        return PublicationStatus.SCHEDULED
    return _published(publication, result, now)


def _published(publication: Publication, result: Published, now: datetime) -> str:
    _record(
        publication,
        now,
        status=PublicationStatus.PUBLISHED,
        published_at=now,
        platform_post_id=result.post_id,
        platform_url=result.url,
        next_attempt_at=None,
        error="",
    )
    Connection.objects.filter(pk=publication.connection_id).update(last_used_at=now)
    return PublicationStatus.PUBLISHED


def _hold(publication: Publication, now: datetime, why: str) -> str:
    _record(
        publication,
        now,
        status=PublicationStatus.NEEDS_REVIEW,
        next_attempt_at=None,
        error=f"Held for review: {why}"[:500],
    )
    return PublicationStatus.NEEDS_REVIEW


def _verify_failed(publication: Publication, exc: PlatformError, now: datetime) -> str:
    """The check on the platform failed: the row stays PUBLISHING (to verify again) while
    waiting is meaningful; it is never put back to SCHEDULED, which would post blindly."""
    if exc.token_invalid:
        connection_mark_needs_attention(connection=publication.connection, error=exc.message)
        _record(publication, now, next_attempt_at=now, error=exc.message)
        return PublicationStatus.PUBLISHING
    if exc.retry_at is not None:
        _record(publication, now, next_attempt_at=max(exc.retry_at, now), error=exc.message)
        return PublicationStatus.PUBLISHING
    if exc.unknown_outcome and publication.attempts < MAX_ATTEMPTS:
        _record(publication, now, next_attempt_at=now + STALE_AFTER, error=exc.message)
        return PublicationStatus.PUBLISHING
    return _hold(publication, now, f"could not check the platform: {exc.message}")


def _failed(publication: Publication, exc: PlatformError, now: datetime) -> str:
    if exc.token_invalid:
        connection_mark_needs_attention(connection=publication.connection, error=exc.message)
        _record(
            publication,
            now,
            status=PublicationStatus.SCHEDULED,
            next_attempt_at=now,
            error=f"Waiting for the account to be reconnected: {exc.message}"[:500],
        )
        return PublicationStatus.SCHEDULED
    if exc.retry_at is not None:
        _record(
            publication,
            now,
            status=PublicationStatus.SCHEDULED,
            next_attempt_at=max(exc.retry_at, now),
            error=f"Rate limited until {exc.retry_at.isoformat()}: {exc.message}"[:500],
        )
        return PublicationStatus.SCHEDULED
    if exc.unknown_outcome:
        # Stay PUBLISHING: the sweep checks the platform before any new attempt.
        _record(publication, now, next_attempt_at=now + POLL_DELAY * 4, error=exc.message)
        return PublicationStatus.PUBLISHING
    _record(
        publication, now, status=PublicationStatus.FAILED, next_attempt_at=None, error=exc.message
    )
    return PublicationStatus.FAILED


def publication_review(
    *, publication: Publication, published: bool, post_id: str = "", now: datetime | None = None
) -> int:
    """Staff settle a publication held for review: they found it on the account
    (``published``, with its id if they have it) or not (it goes back to the schedule)."""
    now = now or timezone.now()
    rows = Publication.objects.filter(
        tenant_id=publication.tenant_id, pk=publication.pk, status=PublicationStatus.NEEDS_REVIEW
    )
    if published:
        return rows.update(
            status=PublicationStatus.PUBLISHED,
            published_at=now,
            platform_post_id=post_id[:100],
            error="",
            updated_at=now,
        )
    return rows.update(
        status=PublicationStatus.SCHEDULED, next_attempt_at=now, error="", updated_at=now
    )


__all__ = [
    "Claim",
    "get_publisher",
    "publication_publish",
    "publication_review",
    "publications_claim_due",
]
