"""API credentials: tenant API keys and platform JWTs. The tenant always comes from the
credential, never from the request."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import jwt
from django.conf import settings
from rest_framework import authentication, exceptions

from crm.observability import log_tenant_set
from crm.selectors import tenant_by_reference
from crm.services import CREDENTIALS_GENERATION_KEY, api_key_cached, api_key_verify

from .auth_failures import auth_failures_check, auth_failures_check_and_count, auth_failures_record
from .redis_fast import REDIS_ERRORS, counter_uncount

if TYPE_CHECKING:
    from crm.models import Tenant

logger = logging.getLogger(__name__)

JWT_LEEWAY_SECONDS = 30


@dataclass(frozen=True)
class ApiPrincipal:
    """Who is calling: a tenant API key or a platform service with a JWT."""

    tenant: Tenant
    kind: str  # "api_key" | "jwt"
    subject: str
    credential_id: str
    scopes: tuple[str, ...] = field(default_factory=tuple)

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    pk = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.subject}"


def _authorization(request) -> str:
    """The ``Authorization`` header, as DRF's ``get_authorization_header`` reads it (decoded
    as latin-1), from ``META``: ``request.headers`` would build a dict of every header of
    the request for this one."""
    value = request.META.get("HTTP_AUTHORIZATION", "")
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _credential(request, keyword: str) -> str | None:
    header = _authorization(request)
    scheme, _, value = header.partition(" ")
    if scheme.lower() != keyword.lower():
        return None
    value = value.strip()
    if not value or " " in value:
        raise exceptions.AuthenticationFailed(f"Malformed {keyword} credential.")
    return value


class _LimitedAuthentication(authentication.BaseAuthentication):
    """Refuses callers whose address failed too often, and counts every failure
    (``crm.api.auth_failures``)."""

    keyword: str
    # A Redis counter fetched with the failure limit, passed to ``authenticate_credential``.
    reads_counter: str | None = None

    def authenticate(self, request):
        header = _authorization(request)
        if header.partition(" ")[0].lower() != self.keyword.lower():
            return None  # another scheme's credential, or none
        generation = auth_failures_check(request=request, read=self.reads_counter)
        return self._verified(request, generation)

    def _verified(self, request, generation: int | None):
        try:
            result = self.authenticate_credential(request, generation)
        except exceptions.AuthenticationFailed:
            auth_failures_record(request=request)
            raise
        if result is not None:
            log_tenant_set(result[0].tenant)  # the request's log lines name the tenant
        return result

    def authenticate_credential(self, request, counter: int | None):  # pragma: no cover
        raise NotImplementedError

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'


class ApiKeyAuthentication(_LimitedAuthentication):
    """``Authorization: Api-Key <key>``."""

    keyword = "Api-Key"
    # The credentials generation: a verified key is reused from this process's cache only
    # under the generation it was verified in (crm.services.api_key_verify).
    reads_counter = CREDENTIALS_GENERATION_KEY

    def authenticate(self, request):
        """As every credential, with one more step for a key this process has verified:
        the request's rate limit is counted in the same Redis round trip as the failure limit
        and the credentials generation (``_count_plan``), not in a second one after the
        permission check. It is counted only when it would be today: the key is still valid
        (the generation it was verified under is current), the address is under the failure
        limit, and the view's permissions grant the key's scopes. The throttle then reads
        that count (``CredentialRateThrottle.counted``)."""
        plan = self._count_plan(request)
        if plan is None:
            return super().authenticate(request)
        cached, throttle, (key, timeout, at) = plan
        generation, count = auth_failures_check_and_count(
            request=request,
            read=CREDENTIALS_GENERATION_KEY,
            expected=cached.generation,
            count_key=key,
            timeout=timeout,
        )
        try:
            result = self._verified(request, generation)
        except exceptions.AuthenticationFailed:
            if count is not None:
                _uncount(key)  # the cache entry went in between: refused, so not counted
            raise
        if count is not None:
            if result is not None and result[0].credential_id == f"key:{cached.id}":
                throttle.counted(request, key, count, at)
            else:  # pragma: no cover - the verified key is the cached one under its generation
                _uncount(key)
        return result

    def _count_plan(self, request):
        """``(cached key, throttle, throttle.count_key(...))`` when this request can be
        counted with its authentication, else None: an ``Api-Key`` this process verified
        (``api_key_cached``), a view whose one throttle can count ahead (``count_key``) and
        whose permissions all say, from the key's scopes alone, that they will grant it."""
        view = (getattr(request, "parser_context", None) or {}).get("view")
        if view is None:
            return None
        header = _authorization(request)
        scheme, _, raw_key = header.partition(" ")
        if scheme.lower() != self.keyword.lower() or not raw_key or " " in raw_key.strip():
            return None
        cached = api_key_cached(raw_key=raw_key.strip())
        if cached is None:
            return None
        throttles = view.get_throttles()
        if len(throttles) != 1 or not hasattr(throttles[0], "count_key"):
            return None
        for permission in view.get_permissions():
            grants = getattr(permission, "grants", None)
            if grants is None or not grants(cached.scopes, view, request.method):
                return None
        key = throttles[0].count_key(f"key:{cached.id}")
        if key is None:
            return None
        return cached, throttles[0], key

    def authenticate_credential(self, request, counter: int | None):
        raw_key = _credential(request, self.keyword)
        if raw_key is None:
            return None
        api_key = api_key_verify(raw_key=raw_key, generation=counter)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        principal = ApiPrincipal(
            tenant=api_key.tenant,
            kind="api_key",
            subject=api_key.prefix,
            credential_id=f"key:{api_key.id}",
            scopes=tuple(api_key.scopes or ()),
        )
        return principal, api_key


def _uncount(key: str) -> None:
    try:
        counter_uncount(key)
    except REDIS_ERRORS:
        logger.warning("rate limit: a refused request stays counted (Redis unreachable)")


class PlatformJWTAuthentication(_LimitedAuthentication):
    """``Authorization: Bearer <jwt>``: HS256 with ``JWT_SECRET``; claims ``sub``,
    ``tenant_id`` (the tenant's id or slug), ``scope``, ``aud`` (``JWT_AUDIENCE``), ``iss``
    (``JWT_ISSUER``), ``iat`` and ``exp``, at most ``JWT_MAX_LIFETIME`` seconds apart."""

    keyword = "Bearer"

    def authenticate_credential(self, request, counter: int | None):
        token = _credential(request, self.keyword)
        if token is None:
            return None
        try:
            claims = jwt.decode(
                token,
                settings.JWT_SECRET,
                algorithms=settings.JWT_ALGORITHMS,
                audience=settings.JWT_AUDIENCE,
                issuer=settings.JWT_ISSUER,
                options={"require": ["exp", "iat", "aud", "iss", "sub", "tenant_id"]},
                leeway=JWT_LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError as exc:
            raise exceptions.AuthenticationFailed("Token expired.") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise exceptions.AuthenticationFailed(f"Token lacks the {exc.claim!r} claim.") from exc
        except jwt.InvalidAudienceError as exc:
            raise exceptions.AuthenticationFailed("Token is not meant for this API.") from exc
        except jwt.InvalidIssuerError as exc:
            raise exceptions.AuthenticationFailed("Token has an unknown issuer.") from exc
        except jwt.InvalidTokenError as exc:
            raise exceptions.AuthenticationFailed("Invalid token.") from exc
        # A long-lived token is refused even while it is valid: a leaked one must not be
        # usable for months.
        try:
            lifetime = int(claims["exp"]) - int(claims["iat"])
        except (TypeError, ValueError) as exc:
            raise exceptions.AuthenticationFailed("Invalid token.") from exc
        if lifetime > settings.JWT_MAX_LIFETIME:
            raise exceptions.AuthenticationFailed(
                f"Token lifetime exceeds {settings.JWT_MAX_LIFETIME} seconds."
            )
        tenant = tenant_by_reference(reference=str(claims["tenant_id"]))
        if tenant is None:
            raise exceptions.AuthenticationFailed("Token names an unknown tenant.")
        scope = claims.get("scope") or ()
        scopes = tuple(scope.split()) if isinstance(scope, str) else tuple(scope)
        principal = ApiPrincipal(
            tenant=tenant,
            kind="jwt",
            subject=str(claims["sub"]),
            credential_id=f"jwt:{tenant.pk}:{claims['sub']}",
            scopes=scopes,
        )
        return principal, claims
