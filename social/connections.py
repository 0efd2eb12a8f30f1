"""Connections: OAuth connect flows (authlib), the Facebook Page choice, token refresh, and
the connection states.

States: ACTIVE → NEEDS_ATTENTION (the platform refused the token: revoked, expired, a
failed refresh; ``status_error`` holds its words) → ACTIVE again on reconnect;
DISCONNECTED when staff disconnect (tokens are wiped). Publications of a connection that is
not ACTIVE wait (the due sweep skips them).

The connect flow, for every platform:

1. ``oauth_start`` stores an ``OAuthState`` row (nonce, session key, user, tenant, club,
   PKCE verifier, 10 minutes to live) and returns the platform's authorize URL whose
   ``state`` is ``signing.dumps`` of the nonce, tenant, club and platform. PKCE S256 goes to
   every platform (X requires it; Facebook Login accepts it).
2. ``oauth_complete`` checks the signature and age of ``state``, then locks and *deletes*
   the row matching nonce + session + user + tenant + club, in one transaction: a replayed,
   expired, tampered or foreign state finds no row and is refused before any token call.
3. X: the code is exchanged (with the verifier) and the account stored with its access and
   refresh tokens (``offline.access`` is asked for, so there is a refresh token).
   Facebook / Instagram: the code becomes a short-lived user token, then a long-lived one,
   whose only use is to list the Pages the person manages (``/me/accounts``) with each
   Page's own token; a ``PageChoice`` keeps them (encrypted) until staff pick one, and only
   the picked Page's token (or, for Instagram, the linked professional account with its
   Page's token) is stored. The user token is never stored.

Refresh (``connections_refresh_due`` / ``connection_refresh``): a connection whose token
expires within ``SOCIAL_REFRESH_MARGIN`` is locked ``FOR NO KEY UPDATE SKIP LOCKED`` and
re-read;
a second refresher skips it instead of waiting, and a refresher that gets the lock after
another finished sees the new expiry and does nothing. X refresh tokens are single-use, so
two refreshers spending the same one would lock the club out; under the lock only one
ever does. The new tokens are saved in the same transaction as the lock. A refused refresh
(``invalid_grant``) moves the connection to NEEDS_ATTENTION.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from crm.models import Club, Tenant

from .models import (
    Connection,
    ConnectionStatus,
    OAuthState,
    PageChoice,
    Platform,
    Publication,
    PublicationStatus,
)

logger = logging.getLogger(__name__)

STATE_SALT = "social.oauth.state"
# media.write: image upload (POST /2/media/upload); offline.access: a refresh token.
X_SCOPES = ("tweet.read", "tweet.write", "users.read", "media.write", "offline.access")
FACEBOOK_SCOPES = ("pages_show_list", "pages_manage_posts", "pages_read_engagement")
INSTAGRAM_SCOPES = (
    "pages_show_list",
    "pages_read_engagement",
    "business_management",
    "instagram_basic",
    "instagram_content_publish",
)
# Graph API error codes that mean "this token is no good": reconnect needed.
GRAPH_TOKEN_ERRORS = {102, 190, 200, 10}


class OAuthFlowError(ValidationError):
    """A connect flow was refused: bad state, a platform error, nothing to connect."""


class PlatformError(Exception):
    """A platform answered with an error. ``token_invalid``: the token is dead (reconnect);
    ``retry_at``: a rate limit says when to try again; ``unknown_outcome``: the request may
    or may not have taken effect (timeout, 5xx)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        token_invalid: bool = False,
        retry_at: datetime | None = None,
        unknown_outcome: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message[:500]
        self.status = status
        self.token_invalid = token_invalid
        self.retry_at = retry_at
        self.unknown_outcome = unknown_outcome


# --- platform endpoints (base URLs from settings, so tests and local fakes stand in) -------


def graph_url(path: str) -> str:
    base = settings.SOCIAL_FACEBOOK_GRAPH_URL.rstrip("/")
    return f"{base}/{settings.SOCIAL_GRAPH_API_VERSION}/{path.lstrip('/')}"


def x_url(path: str) -> str:
    return f"{settings.SOCIAL_X_API_URL.rstrip('/')}/{path.lstrip('/')}"


def _facebook_dialog_url() -> str:
    base = settings.SOCIAL_FACEBOOK_DIALOG_URL.rstrip("/")
    return f"{base}/{settings.SOCIAL_GRAPH_API_VERSION}/dialog/oauth"


def graph_error(response: requests.Response) -> PlatformError:
    """The Graph API's error body as a ``PlatformError``."""
    try:
        error = response.json().get("error", {})
    except ValueError:
        error = {}
    code = error.get("code")
    message = error.get("message") or f"HTTP {response.status_code}"
    return PlatformError(
        f"Facebook: {message} (code {code})",
        status=response.status_code,
        token_invalid=code in GRAPH_TOKEN_ERRORS or response.status_code == 401,
        unknown_outcome=response.status_code >= 500,
    )


def graph_request(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    try:
        response = requests.request(
            method, graph_url(path), timeout=settings.SOCIAL_HTTP_TIMEOUT, **kwargs
        )
    except requests.RequestException as exc:
        raise PlatformError(f"Facebook unreachable: {exc}", unknown_outcome=True) from exc
    if response.status_code >= 400:
        raise graph_error(response)
    return response.json()


def _oauth_session(platform: str, *, redirect_uri: str, verifier: str | None) -> OAuth2Session:
    if platform == Platform.X:
        return OAuth2Session(
            client_id=settings.SOCIAL_X_CLIENT_ID,
            client_secret=settings.SOCIAL_X_CLIENT_SECRET,
            scope=" ".join(X_SCOPES),
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106 (a method name)
            timeout=settings.SOCIAL_HTTP_TIMEOUT,
        )
    scopes = INSTAGRAM_SCOPES if platform == Platform.INSTAGRAM else FACEBOOK_SCOPES
    return OAuth2Session(
        client_id=settings.SOCIAL_FACEBOOK_APP_ID,
        client_secret=settings.SOCIAL_FACEBOOK_APP_SECRET,
        scope=",".join(scopes),
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_post",  # noqa: S106 (a method name)
        timeout=settings.SOCIAL_HTTP_TIMEOUT,
    )


# --- the connect flow ------------------------------------------------------------------------


def oauth_start(
    *,
    tenant: Tenant,
    club: Club,
    platform: str,
    user: Any,
    session_key: str,
    redirect_uri: str,
    now: datetime | None = None,
) -> str:
    """Begin connecting ``club`` to ``platform``: returns the URL to send the browser to."""
    now = now or timezone.now()
    if club.tenant_id != tenant.pk:
        raise OAuthFlowError({"club": "Not a club of this tenant."})
    if platform not in Platform.values:
        raise OAuthFlowError({"platform": f"One of {', '.join(Platform.values)}."})
    if not session_key:
        raise OAuthFlowError("A connect flow needs a signed-in session.")
    nonce = secrets.token_urlsafe(32)
    verifier = generate_token(64)
    OAuthState.objects.create(
        tenant=tenant,
        club=club,
        platform=platform,
        nonce=nonce,
        session_key=session_key,
        user=user,
        code_verifier=verifier,
        redirect_uri=redirect_uri,
        expires_at=now + timedelta(seconds=settings.SOCIAL_OAUTH_STATE_TTL),
    )
    state = signing.dumps(
        {"n": nonce, "t": str(tenant.pk), "c": str(club.pk), "p": platform}, salt=STATE_SALT
    )
    session = _oauth_session(platform, redirect_uri=redirect_uri, verifier=verifier)
    endpoint = settings.SOCIAL_X_AUTHORIZE_URL if platform == Platform.X else _facebook_dialog_url()
    url, _ = session.create_authorization_url(endpoint, state=state, code_verifier=verifier)
    return url


def _consume_state(*, state: str, session_key: str, user: Any, now: datetime) -> OAuthState:
    """Check ``state`` and spend its row; anything wrong is one refusal, with no detail an
    attacker could use to tell the cases apart."""
    refused = OAuthFlowError({"state": "This connect link is invalid or has expired; start again."})
    try:
        claims = signing.loads(state, salt=STATE_SALT, max_age=settings.SOCIAL_OAUTH_STATE_TTL)
    except signing.BadSignature as exc:  # SignatureExpired is a BadSignature
        raise refused from exc
    if not isinstance(claims, dict) or not session_key:
        raise refused
    # Locked, then deleted in the caller's transaction: of two callbacks with the same state,
    # the second waits for the first and then finds nothing.
    rows = list(
        OAuthState.objects.filter(
            nonce=claims.get("n"),
            tenant_id=claims.get("t"),
            club_id=claims.get("c"),
            platform=claims.get("p"),
            session_key=session_key,
            user=user,
            expires_at__gt=now,
        )
        .select_for_update(of=("self",))
        .select_related("tenant", "club")
    )
    if not rows:
        raise refused
    row = rows[0]
    OAuthState.objects.filter(pk=row.pk).delete()
    return row


@dataclass(frozen=True)
class OAuthResult:
    """What a callback produced: a connection (X) or a page choice to make (Meta)."""

    connection: Connection | None = None
    page_choice: PageChoice | None = None


def oauth_complete(
    *,
    state: str,
    code: str,
    session_key: str,
    user: Any,
    error: str = "",
    now: datetime | None = None,
) -> OAuthResult:
    """Finish a connect flow from the platform's callback parameters."""
    now = now or timezone.now()
    with transaction.atomic():
        row = _consume_state(state=state, session_key=session_key, user=user, now=now)
    if error:
        raise OAuthFlowError({"code": f"The platform refused: {error}"[:300]})
    if not code:
        raise OAuthFlowError({"code": "The platform sent no authorization code."})
    if row.platform == Platform.X:
        return OAuthResult(connection=_complete_x(row=row, code=code, now=now))
    return OAuthResult(page_choice=_complete_meta(row=row, code=code, now=now))


def _fetch_token(row: OAuthState, *, url: str, code: str, method: str = "POST") -> dict:
    session = _oauth_session(row.platform, redirect_uri=row.redirect_uri, verifier=None)
    try:
        return dict(
            session.fetch_token(url, code=code, code_verifier=row.code_verifier, method=method)
        )
    except (OAuthError, requests.RequestException, ValueError) as exc:
        raise OAuthFlowError({"code": f"The token exchange failed: {exc}"[:300]}) from exc


def _expiry(token: dict, now: datetime) -> datetime | None:
    expires_in = token.get("expires_in")
    return now + timedelta(seconds=int(expires_in)) if expires_in else None


def _complete_x(*, row: OAuthState, code: str, now: datetime) -> Connection:
    token = _fetch_token(row, url=x_url("2/oauth2/token"), code=code)
    try:
        response = requests.get(
            x_url("2/users/me"),
            headers={"Authorization": f"Bearer {token['access_token']}"},
            timeout=settings.SOCIAL_HTTP_TIMEOUT,
        )
        response.raise_for_status()
        me = response.json()["data"]
    except (requests.RequestException, KeyError, ValueError) as exc:
        raise OAuthFlowError({"code": f"Could not read the X account: {exc}"[:300]}) from exc
    return connection_save(
        tenant=row.tenant,
        club=row.club,
        platform=Platform.X,
        account_id=str(me["id"]),
        account_name=f"@{me.get('username', me['id'])}",
        account_type="user",
        access_token=token["access_token"],
        refresh_token=token.get("refresh_token"),
        token_expires_at=_expiry(token, now),
        scopes=str(token.get("scope", "")).split(),
        user=row.user,
    )


def _complete_meta(*, row: OAuthState, code: str, now: datetime) -> PageChoice:
    # Meta's token endpoint takes GET with the parameters in the query.
    short = _fetch_token(row, url=graph_url("oauth/access_token"), code=code, method="GET")
    try:
        long_lived = graph_request(
            "GET",
            "oauth/access_token",
            params={
                "grant_type": "fb_exchange_token",
                "client_id": settings.SOCIAL_FACEBOOK_APP_ID,
                "client_secret": settings.SOCIAL_FACEBOOK_APP_SECRET,
                "fb_exchange_token": short["access_token"],
            },
        )
        accounts = graph_request(
            "GET",
            "me/accounts",
            params={
                "fields": "id,name,category,access_token,tasks,"
                "instagram_business_account{id,username}",
                "access_token": long_lived["access_token"],
            },
        )
    except PlatformError as exc:
        raise OAuthFlowError({"code": exc.message}) from exc
    pages = []
    for page in accounts.get("data", []):
        instagram = page.get("instagram_business_account") or {}
        if row.platform == Platform.INSTAGRAM and not instagram:
            continue
        pages.append(
            {
                "id": str(page["id"]),
                "name": page.get("name", ""),
                "category": page.get("category", ""),
                "access_token": page["access_token"],
                "instagram_id": str(instagram.get("id", "")),
                "instagram_username": instagram.get("username", ""),
            }
        )
    if not pages:
        what = (
            "an Instagram professional account linked to a Page"
            if (row.platform == Platform.INSTAGRAM)
            else "a Facebook Page"
        )
        raise OAuthFlowError({"code": f"This Facebook login manages no {what}."})
    return PageChoice.objects.create(
        tenant=row.tenant,
        club=row.club,
        platform=row.platform,
        session_key=row.session_key,
        user=row.user,
        pages=json.dumps(pages),
        scopes=str(short.get("scope", "")).split(","),
        expires_at=now + timedelta(seconds=settings.SOCIAL_OAUTH_STATE_TTL),
    )


def page_choice_options(*, choice: PageChoice) -> list[dict[str, str]]:
    """The Pages to pick from, without their tokens."""
    return [
        {key: value for key, value in page.items() if key != "access_token"}
        for page in json.loads(choice.pages)
    ]


def page_choice_pick(
    *,
    tenant: Tenant,
    choice_id: Any,
    page_id: str,
    session_key: str,
    user: Any,
    now: datetime | None = None,
) -> Connection:
    """Store the chosen Page (or its Instagram account) with the Page's own token."""
    now = now or timezone.now()
    with transaction.atomic():
        choice = (
            PageChoice.objects.for_tenant(tenant)
            .select_for_update(of=("self",))
            .select_related("club")
            .filter(pk=choice_id, session_key=session_key, user=user, expires_at__gt=now)
            .first()
        )
        if choice is None:
            raise OAuthFlowError({"choice": "This choice has expired; connect again."})
        page = next((p for p in json.loads(choice.pages) if p["id"] == str(page_id)), None)
        if page is None:
            raise OAuthFlowError({"page": "Pick one of the Pages listed."})
        if choice.platform == Platform.INSTAGRAM:
            fields = {
                "account_id": page["instagram_id"],
                "account_name": f"@{page['instagram_username']}"
                if page["instagram_username"]
                else page["name"],
                "account_type": f"instagram via page {page['id']}",
            }
        else:
            fields = {
                "account_id": page["id"],
                "account_name": page["name"],
                "account_type": page["category"] or "page",
            }
        connection = connection_save(
            tenant=tenant,
            club=choice.club,
            platform=choice.platform,
            access_token=page["access_token"],
            refresh_token=None,
            # Page tokens obtained through a long-lived user token do not expire.
            token_expires_at=None,
            scopes=choice.scopes,
            user=user,
            **fields,
        )
        choice.delete()
    return connection


def connection_save(
    *,
    tenant: Tenant,
    club: Club,
    platform: str,
    account_id: str,
    account_name: str,
    account_type: str,
    access_token: str,
    refresh_token: str | None,
    token_expires_at: datetime | None,
    scopes: list[str],
    user: Any,
) -> Connection:
    """Create or reconnect the (tenant, platform, account) connection: ACTIVE again."""
    connection, _ = Connection.objects.update_or_create(
        tenant=tenant,
        platform=platform,
        account_id=account_id,
        defaults={
            "club": club,
            "account_name": account_name[:200],
            "account_type": account_type[:40],
            "access_token": access_token,
            "refresh_token": refresh_token,
            "token_expires_at": token_expires_at,
            "scopes": [s for s in scopes if s],
            "status": ConnectionStatus.ACTIVE,
            "status_error": "",
            "connected_by": user if getattr(user, "pk", None) else None,
        },
    )
    return connection


def connection_disconnect(*, connection: Connection) -> Connection:
    """Stop using the connection and forget its tokens; its pending publications are
    cancelled (they could never go)."""
    with transaction.atomic():
        connection.status = ConnectionStatus.DISCONNECTED
        connection.status_error = ""
        connection.access_token = ""
        connection.refresh_token = None
        connection.token_expires_at = None
        connection.save()
        connection_publications_cancel(connection=connection)
    return connection


def connection_publications_cancel(*, connection: Connection) -> int:
    rows = Publication.objects.filter(tenant_id=connection.tenant_id, connection=connection)
    # One in flight may or may not have gone: staff check the account.
    rows.filter(status=PublicationStatus.PUBLISHING).update(
        status=PublicationStatus.NEEDS_REVIEW,
        next_attempt_at=None,
        error="Disconnected while publishing; check the account.",
    )
    return rows.filter(status__in=[PublicationStatus.DRAFT, PublicationStatus.SCHEDULED]).update(
        status=PublicationStatus.CANCELLED, next_attempt_at=None
    )


def connection_mark_needs_attention(*, connection: Connection, error: str) -> None:
    """The platform refused the token: staff must reconnect. Its publications wait."""
    Connection.objects.filter(pk=connection.pk, status=ConnectionStatus.ACTIVE).update(
        status=ConnectionStatus.NEEDS_ATTENTION, status_error=error[:500]
    )
    connection.status = ConnectionStatus.NEEDS_ATTENTION
    connection.status_error = error[:500]
    logger.warning("social connection %s needs attention: %s", connection.pk, error)


# --- refresh -----------------------------------------------------------------------------------


def connection_refresh(
    *, connection_id: Any, now: datetime | None = None, force: bool = False
) -> str:
    """Refresh one connection's token if it is due, one refresher at a time.

    Returns ``refreshed``, ``skipped`` (locked by another refresher, or not due: another
    refresher finished first), or ``failed`` (now NEEDS_ATTENTION)."""
    now = now or timezone.now()
    margin = now + timedelta(seconds=settings.SOCIAL_REFRESH_MARGIN)
    with transaction.atomic():
        # FOR NO KEY UPDATE: excludes other refreshers (SKIP LOCKED) but not the foreign-key
        # checks of publication writes, which take KEY SHARE on this row.
        connection = (
            Connection.objects.select_for_update(skip_locked=True, no_key=True)
            .filter(pk=connection_id, status=ConnectionStatus.ACTIVE)
            .first()
        )
        if connection is None:
            return "skipped"
        due = connection.token_expires_at is not None and connection.token_expires_at <= margin
        if not (due or force) or not connection.refresh_token:
            return "skipped"
        if connection.platform != Platform.X:
            # Meta Page tokens have no refresh token; nothing else to do here.
            return "skipped"
        session = _oauth_session(Platform.X, redirect_uri="", verifier=None)
        try:
            token = dict(
                session.refresh_token(
                    x_url("2/oauth2/token"),
                    refresh_token=connection.refresh_token,
                    client_id=settings.SOCIAL_X_CLIENT_ID,
                )
            )
        except OAuthError as exc:
            # invalid_grant: the refresh token was revoked or spent; only a reconnect helps.
            connection_mark_needs_attention(connection=connection, error=f"X refresh: {exc}")
            return "failed"
        except requests.RequestException as exc:
            logger.warning("X refresh of %s failed, will retry: %s", connection.pk, exc)
            return "skipped"
        connection.access_token = token["access_token"]
        # X rotates refresh tokens: the old one is spent, keep the new one.
        connection.refresh_token = token.get("refresh_token") or connection.refresh_token
        connection.token_expires_at = _expiry(token, now)
        connection.last_refreshed_at = now
        connection.save(
            update_fields=[
                "access_token",
                "refresh_token",
                "token_expires_at",
                "last_refreshed_at",
                "updated_at",
            ]
        )
    return "refreshed"


def connections_refresh_due(*, now: datetime | None = None) -> dict[str, int]:
    """Beat: refresh every active connection whose token expires within the margin."""
    now = now or timezone.now()
    margin = now + timedelta(seconds=settings.SOCIAL_REFRESH_MARGIN)
    ids = list(
        Connection.objects.filter(
            status=ConnectionStatus.ACTIVE,
            token_expires_at__lte=margin,
            refresh_token__isnull=False,
        ).values_list("pk", flat=True)
    )
    counts: dict[str, int] = {}
    for connection_id in ids:
        outcome = connection_refresh(connection_id=connection_id, now=now)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def oauth_purge_expired(*, now: datetime | None = None) -> int:
    """Forget connect flows nobody finished (their verifiers and Page tokens with them)."""
    now = now or timezone.now()
    states, _ = OAuthState.objects.filter(expires_at__lte=now).delete()
    choices, _ = PageChoice.objects.filter(expires_at__lte=now).delete()
    return states + choices


__all__ = [
    "OAuthFlowError",
    "OAuthResult",
    "PlatformError",
    "connection_disconnect",
    "connection_refresh",
    "connections_refresh_due",
    "oauth_complete",
    "oauth_purge_expired",
    "oauth_start",
    "page_choice_options",
    "page_choice_pick",
]
