"""Writes of the shared kernel: tenants, clubs, staff, API keys."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from .models import REGION_DEFAULTS, ApiKey, Club, StaffMembership, StaffRole, Tenant
from .scopes import DEFAULT_API_KEY_SCOPES, unknown_scopes
from .selectors import tenant_cached

logger = logging.getLogger(__name__)

API_KEY_PREFIX = "crm"
# last_used_at is a hint for staff, not an audit log: write it at most once a minute per key
# so authentication does not turn every API read into a write.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def tenant_create(
    *,
    slug: str,
    name: str,
    region: str,
    timezone_name: str | None = None,
    phone_region: str | None = None,
    currency: str | None = None,
) -> tuple[Tenant, bool]:
    """Create a tenant, or return the existing one with that slug (idempotent).

    Region defaults fill whatever is not given. Returns ``(tenant, created)``.
    """
    defaults = REGION_DEFAULTS[region]
    tenant = Tenant(
        slug=slug,
        name=name,
        region=region,
        timezone=timezone_name or defaults["timezone"],
        default_phone_region=phone_region or defaults["phone_region"],
        currency=(currency or defaults["currency"]).upper(),
    )
    tenant.full_clean(validate_unique=False)
    try:
        with transaction.atomic():
            tenant.save(force_insert=True)
    except IntegrityError:
        return Tenant.objects.get(slug=slug), False
    return tenant, True


def club_create(*, tenant: Tenant, name: str, timezone_name: str | None = None) -> Club:
    club = Club(tenant=tenant, name=name, timezone=timezone_name or tenant.timezone)
    club.full_clean()
    club.save()
    return club


def club_update(*, club: Club, name: str | None = None, timezone_name: str | None = None) -> Club:
    if name is not None:
        club.name = name
    if timezone_name is not None:
        club.timezone = timezone_name
    club.full_clean()
    club.save()
    return club


def staff_membership_set(
    *, tenant: Tenant, user, role: str = StaffRole.SUPPORT, club: Club | None = None
) -> StaffMembership:
    """Give ``user`` a role in ``tenant`` (and make them staff so they can use the console)."""
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    membership, _ = StaffMembership.objects.update_or_create(
        tenant=tenant, user=user, defaults={"role": role, "club": club}
    )
    return membership


def staff_member_create(
    *,
    tenant: Tenant,
    username: str,
    password: str,
    email: str = "",
    role: str = StaffRole.SUPPORT,
    club: Club | None = None,
) -> StaffMembership:
    """A new staff login with a role in ``tenant`` (what a tenant admin may do).

    Never touches an existing user: a taken username is refused, so nobody can take over or
    reset another tenant's login by naming it.
    """
    user_model = get_user_model()
    taken = ValidationError({"new_username": ["This username is taken."]})
    if user_model.objects.filter(username__iexact=username).exists():
        raise taken
    user = user_model(username=username, email=email, is_staff=True)
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save(force_insert=True)
            return StaffMembership.objects.create(tenant=tenant, user=user, role=role, club=club)
    except IntegrityError as exc:  # the same name, created a moment ago
        raise taken from exc


def staff_user_create(
    *, tenant: Tenant, username: str, password: str, role: str = StaffRole.ADMIN, email: str = ""
):
    """Create (or reset the password of) a staff login with a role in ``tenant``."""
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username=username, defaults={"email": email})
    user.set_password(password)
    user.is_staff = True
    user.save()
    staff_membership_set(tenant=tenant, user=user, role=role)
    return user


def _hash_secret(secret: str) -> str:
    # API keys carry 256 bits of randomness, so a fast hash is enough (no brute force to slow).
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedApiKey:
    api_key: ApiKey
    raw_key: str


def api_key_create(
    *, tenant: Tenant, name: str, created_by=None, scopes: Iterable[str] | None = None
) -> IssuedApiKey:
    """Issue a key with ``scopes`` (``crm.scopes``; None: ``DEFAULT_API_KEY_SCOPES``; an
    empty list: a key that can only read its tenant). ``raw_key`` is returned this once and
    never stored."""
    scopes = sorted(set(DEFAULT_API_KEY_SCOPES if scopes is None else scopes))
    unknown = unknown_scopes(scopes)
    if unknown:
        raise ValidationError({"scopes": [f"Unknown scope(s): {', '.join(unknown)}."]})
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    raw_key = f"{API_KEY_PREFIX}_{prefix}_{secret}"
    api_key = ApiKey(
        tenant=tenant,
        name=name,
        prefix=prefix,
        key_hash=_hash_secret(raw_key),
        scopes=scopes,
        created_by=created_by,
    )
    api_key.full_clean(exclude=["prefix", "key_hash", "created_by"])
    api_key.save(force_insert=True)
    return IssuedApiKey(api_key=api_key, raw_key=raw_key)


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key; it stops authenticating at once (``credentials_changed``). Revoking twice
    keeps the first time."""
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    credentials_changed()
    api_key.refresh_from_db(fields=["revoked_at"])
    return api_key


@dataclass(frozen=True)
class VerifiedKey:
    id: uuid.UUID
    prefix: str
    tenant: Tenant
    scopes: list[str]


_VERIFY_SQL = (
    f'SELECT k."id", k."key_hash", k."scopes", k."last_used_at", k."tenant_id" '  # noqa: S608
    f'FROM "{ApiKey._meta.db_table}" k JOIN "{Tenant._meta.db_table}" t ON t."id" = k."tenant_id" '
    'WHERE k."prefix" = %s AND k."revoked_at" IS NULL AND t."is_active"'
)


# Verified keys, per process, keyed by the SHA-256 of the whole key (so only the exact secret
# that was checked against the database ever hits): ``(generation, cached at, row)``. An
# entry is used only while the credentials generation (a Redis counter every revocation,
# key change and tenant change bumps after its commit, read in the same round trip as the
# failed-authentication limit) is the one it was cached under, and for at most
# API_KEY_CACHE_SECONDS: a revoked key, a changed scope or a deactivated tenant is refused on
# the next request in every process, and within API_KEY_CACHE_SECONDS even if the bump was
# lost (Redis down at that moment). Without a generation (Redis unreachable) nothing is
# cached or read from here: every request asks the database, as before.
API_KEY_CACHE_SECONDS = 30.0
API_KEY_CACHE_MAX = 10_000
CREDENTIALS_GENERATION_KEY = "api-credentials-generation"
_verified: dict[str, tuple[int, float, list]] = {}


def credentials_changed() -> None:
    """API keys or tenants changed: forget verified keys here at once, and everywhere once
    the change is committed (the generation bump)."""
    _verified.clear()
    transaction.on_commit(_bump_credentials_generation)


def _bump_credentials_generation() -> None:
    from .api.redis_fast import REDIS_ERRORS, counter_incr

    _verified.clear()
    try:
        counter_incr(CREDENTIALS_GENERATION_KEY, timeout=7 * 24 * 3600)
    except REDIS_ERRORS:
        logger.warning(
            "API key cache not invalidated (Redis unreachable): other processes may accept "
            "a changed key for up to %ss",
            API_KEY_CACHE_SECONDS,
        )


@dataclass(frozen=True)
class CachedKey:
    """What this process knows of a key it verified: valid only under ``generation``."""

    generation: int
    id: uuid.UUID
    tenant_id: uuid.UUID
    scopes: tuple[str, ...]


def api_key_cached(*, raw_key: str) -> CachedKey | None:
    """The key as this process verified it less than ``API_KEY_CACHE_SECONDS`` ago (no
    query, nothing touched), or None. It still holds only while the credentials generation is
    ``generation``: the caller reads the generation (``crm.api.authentication`` counts the
    request's rate limit in the same round trip, only under that generation) and then calls
    ``api_key_verify`` with it."""
    entry = _verified.get(_hash_secret(raw_key))
    if entry is None or time.monotonic() - entry[1] >= API_KEY_CACHE_SECONDS:
        return None
    key_id, _key_hash, scopes, _last_used_at, tenant_id = entry[2]
    scopes = json.loads(scopes) if isinstance(scopes, str) else scopes
    return CachedKey(entry[0], key_id, tenant_id, tuple(scopes or ()))


def api_key_verify(*, raw_key: str, generation: int | None = None) -> VerifiedKey | None:
    """The active key matching ``raw_key``, or None. Touches ``last_used_at`` (coarsely).

    Every request authenticates, so this is one hand-written query on the unique prefix, or
    none when this process verified the same key under the current credentials
    ``generation`` (see ``_verified``); revocation and tenant deactivation apply to the very
    next request.
    """
    parts = raw_key.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        return None
    digest = _hash_secret(raw_key)
    started = time.monotonic()
    entry = _verified.get(digest) if generation is not None else None
    if entry is not None and entry[0] == generation and started - entry[1] < API_KEY_CACHE_SECONDS:
        row = entry[2]
    else:
        with connection.cursor() as cursor:
            cursor.execute(_VERIFY_SQL, [parts[1]])
            found = cursor.fetchone()
        if found is None or not hmac.compare_digest(found[1], digest):
            return None
        row = list(found)
        if generation is not None:
            if len(_verified) >= API_KEY_CACHE_MAX:
                _verified.clear()
            _verified[digest] = (generation, started, row)
    key_id, _key_hash, scopes, last_used_at, tenant_id = row
    tenant = tenant_cached(tenant_id=tenant_id)
    if tenant is None:
        return None
    now = timezone.now()
    if last_used_at is None or now - last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key_id).update(last_used_at=now)
        row[3] = now
    scopes = json.loads(scopes) if isinstance(scopes, str) else scopes
    return VerifiedKey(id=key_id, prefix=parts[1], tenant=tenant, scopes=list(scopes or []))
