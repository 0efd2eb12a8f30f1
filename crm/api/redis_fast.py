"""The per-request Redis calls of the API (rate limit, failed-authentication limit) on one
long-lived client per cache backend.

Django's ``RedisCache`` builds a new ``redis.Redis`` object for every call (its response
callback table is rebuilt each time; about a tenth of a millisecond) and its ``incr`` is two
round trips (``EXISTS`` then ``INCRBY``). On the API's hot path, where every request makes
these calls, that cost more than the database. The keys and values are the cache's own
(``cache.make_and_validate_key``, integers stored as integers), so ``cache.get`` reads what
is written here and the other way round; the client comes from the cache's connection pool,
so ``CACHES`` (and a test's ``override_settings``) still decide where Redis is.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from django.core.cache import cache
from redis.exceptions import RedisError

# What a Redis call raises when Redis is unreachable or misbehaves.
REDIS_ERRORS = (RedisError, OSError)

_clients: WeakKeyDictionary[Any, Any] = WeakKeyDictionary()


def redis_client() -> Any | None:
    """A ``redis.Redis`` on the default cache's pool, or None when the default cache is not
    Redis (callers then use the cache API)."""
    backend = getattr(cache, "_cache", None)  # RedisCache's RedisCacheClient
    if backend is None or not hasattr(backend, "get_client"):
        return None
    client = _clients.get(backend)
    if client is None:
        client = backend.get_client(write=True)
        _clients[backend] = client
    return client


def counter_get(key: str) -> int:
    """The integer counter at ``key`` (0 when missing): one ``GET``."""
    client = redis_client()
    if client is None:
        return int(cache.get(key, 0))
    value = client.get(cache.make_and_validate_key(key))
    return 0 if value is None else int(value)


def counters_get(keys: list[str]) -> list[int]:
    """The integer counters at ``keys`` (0 when missing): one ``MGET``."""
    client = redis_client()
    if client is None:
        return [int(cache.get(key, 0)) for key in keys]
    values = client.mget([cache.make_and_validate_key(key) for key in keys])
    return [0 if value is None else int(value) for value in values]


def counter_incr(key: str, *, timeout: int) -> int:
    """Add one to the counter at ``key``, creating it (expiring after ``timeout`` seconds)
    when missing; returns the new count. One round trip (``SET NX EX`` and ``INCR``
    pipelined): the key always gets its expiry, whoever creates it."""
    client = redis_client()
    if client is None:
        if cache.add(key, 1, timeout=timeout):
            return 1
        return int(cache.incr(key))
    full = cache.make_and_validate_key(key)
    pipe = client.pipeline(transaction=False)
    pipe.set(full, 0, ex=timeout, nx=True)
    pipe.incr(full)
    return int(pipe.execute()[1])
