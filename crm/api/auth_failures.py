"""A limit on failed API authentications per client address.

Every bad API key or JWT (wrong, revoked, expired, malformed) counts against the caller's
address in a fixed window (``API_AUTH_FAILURE_RATE``, e.g. ``30/min``); once over it, every
request from that address that presents a credential is refused with 429 before the
credential is even checked, so keys and tokens cannot be guessed at API speed. The counter
lives in Redis; when Redis is unreachable the limit fails open (authentication itself does
not need Redis, and an outage must not lock every client out).
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from redis.exceptions import RedisError
from rest_framework.exceptions import Throttled
from rest_framework.settings import api_settings

from .redis_fast import counter_incr, counters_get, read_and_count, redis_available

logger = logging.getLogger(__name__)

CACHE_ERRORS = (RedisError, OSError)


def _rate() -> tuple[int | None, int | None]:
    """``(failures, seconds)`` of ``API_AUTH_FAILURE_RATE`` ("30/min"); empty: no limit."""
    rate = settings.API_AUTH_FAILURE_RATE
    if not rate:
        return None, None
    count, _, period = rate.partition("/")
    return int(count), {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]


def client_ident(request) -> str | None:
    """The caller's address as DRF's ``BaseThrottle.get_ident`` gives it (``NUM_PROXIES``,
    i.e. ``TRUSTED_PROXY_COUNT``, for X-Forwarded-For), read from ``META``: DRF reads the
    header from ``request.headers``, a dict of every header built for this one."""
    xff = request.META.get("HTTP_X_FORWARDED_FOR")
    remote_addr = request.META.get("REMOTE_ADDR")
    num_proxies = api_settings.NUM_PROXIES
    if num_proxies is not None:
        if num_proxies == 0 or xff is None:
            return remote_addr
        addrs = xff.split(",")
        return addrs[-min(num_proxies, len(addrs))].strip()
    return "".join(xff.split()) if xff else remote_addr


def _key(request, duration: int) -> tuple[str, float]:
    ident = client_ident(request)
    now = time.time()
    window = int(now // duration)
    return f"throttle_authfail_{ident}:{window}", (window + 1) * duration - now


def auth_failures_check(*, request, read: str | None = None) -> int | None:
    """Raise ``Throttled`` when the caller's address has failed too often in this window.

    ``read`` names one more counter to fetch in the same Redis round trip (the API key
    authentication reads the credentials generation, ``crm.services._verified``); its value
    is returned, or None when Redis could not be asked."""
    limit, duration = _rate()
    keys = [read] if read else []
    if limit is not None and duration is not None:
        key, window_ends = _key(request, duration)
        keys.append(key)
    if not keys:
        return None
    try:
        values = counters_get(keys)
    except CACHE_ERRORS:
        logger.warning("auth failure limit unavailable (cache error); letting the request in")
        return None
    if limit is not None and values[-1] >= limit:
        raise Throttled(wait=window_ends, detail="Too many failed authentication attempts.")
    return values[0] if read else None


def auth_failures_check_and_count(
    *, request, read: str, expected: int, count_key: str, timeout: int
) -> tuple[int | None, int | None]:
    """``auth_failures_check`` that also counts the request against its rate limit, in the
    same Redis round trip, when that can be decided before the credential is checked: the
    caller already knows who is calling (a key this process verified under generation
    ``expected``) and that the view permits it. The count (``count_key``, expiring after
    ``timeout`` seconds) is taken only when the counter ``read`` (the credentials generation)
    is still ``expected`` and the address is under the failure limit, so a request that is
    then refused is not counted, as before.

    Returns ``(value of read, count)``, the count None when nothing was counted, and
    ``(None, None)`` when Redis could not be asked; raises ``Throttled`` as
    ``auth_failures_check`` does (nothing counted)."""
    limit, duration = _rate()
    failures_key, window_ends = (
        _key(request, duration) if limit is not None and duration is not None else (None, 0.0)
    )
    if not redis_available():
        return auth_failures_check(request=request, read=read), None
    try:
        generation, failures, count = read_and_count(
            generation_key=read,
            failures_key=failures_key,
            failure_limit=limit,
            expected_generation=expected,
            count_key=count_key,
            timeout=timeout,
        )
    except CACHE_ERRORS:
        logger.warning("auth failure limit unavailable (cache error); letting the request in")
        return None, None
    if limit is not None and failures >= limit:
        raise Throttled(wait=window_ends, detail="Too many failed authentication attempts.")
    return generation, count


def auth_failures_record(*, request) -> None:
    """Count one failed authentication against the caller's address."""
    limit, duration = _rate()
    if limit is None or duration is None:
        return
    key, _ = _key(request, duration)
    try:
        counter_incr(key, timeout=duration + 1)
    except ValueError:  # the key expired between add() and incr(): a new window
        return
    except CACHE_ERRORS:
        logger.warning("auth failure limit unavailable (cache error); failure not counted")
