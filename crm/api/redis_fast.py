"""The per-request Redis calls of the API (rate limit, failed-authentication limit,
credentials generation) on one long-lived connection per thread, packed and read by hand.

Django's ``RedisCache`` builds a new ``redis.Redis`` object for every call and its ``incr``
is two round trips; redis-py's own client path (the retry wrapper, the pool's per-checkout
socket poll and bookkeeping, the pipeline object, the response callbacks) then cost
250-320 µs of CPU for the two calls an API request makes, more than the database's share of
the request. Here each call is one write of pre-packed commands and one read of their
replies on a ``redis.Connection`` of the cache's own settings (address, database, password,
timeouts), kept per thread: about 60-120 µs.

The keys and values are the cache's own (``cache.make_key``; integers are stored as
integers), so ``cache.get`` reads what is written here and the other way round, and
``CACHES`` (and a test's ``override_settings``) still decide where Redis is. A connection
that fails is closed (its stream may hold unread replies) and the call raises one of
``REDIS_ERRORS``; a connection that had worked before and fails before any reply was read
(Redis restarted, an idle timeout) is reopened and the call tried once more, as redis-py's
retry did.
"""

from __future__ import annotations

import os
import threading
from typing import Any
from weakref import WeakKeyDictionary

from django.core.cache import cache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

# What a Redis call raises when Redis is unreachable or misbehaves.
REDIS_ERRORS = (RedisError, OSError)

# Per cache backend (a test's override_settings makes a new one), per thread: a Connection.
_links: WeakKeyDictionary[Any, threading.local] = WeakKeyDictionary()
_links_lock = threading.Lock()


def _backend() -> Any | None:
    """The default cache's ``RedisCacheClient``, or None when it is not Redis."""
    backend = getattr(cache, "_cache", None)
    if backend is None or not hasattr(backend, "_get_connection_pool"):
        return None
    return backend


def _connection(backend: Any) -> Any:
    link = _links.get(backend)
    if link is None:
        with _links_lock:
            link = _links.setdefault(backend, threading.local())
    # A forked child (a Celery prefork worker, a gunicorn worker of a preloaded app) must not
    # share its parent's socket: it opens its own, leaving the parent's alone.
    if getattr(link, "pid", None) != os.getpid():
        pool = backend._get_connection_pool(write=True)
        link.conn = pool.connection_class(**pool.connection_kwargs)
        link.pid = os.getpid()
        link.used = False
    return link


def pack(*args: str | int) -> bytes:
    """One command in Redis's protocol (RESP): an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else b"%d" % arg
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def execute(packed: bytes, replies: int) -> list[Any]:
    """Send ``packed`` (one or more commands) and read ``replies`` replies, in one round
    trip. Raises one of ``REDIS_ERRORS``; an error reply raises ``redis.ResponseError``."""
    backend = _backend()
    if backend is None:  # pragma: no cover - callers check redis_available() first
        raise RedisError("the default cache is not Redis")
    link = _connection(backend)
    conn = link.conn
    while True:
        read = 0
        try:
            conn.send_packed_command([packed], check_health=False)  # connects when needed
            results = []
            for _ in range(replies):
                results.append(conn.read_response())
                read += 1
        except RedisConnectionError:
            conn.disconnect()
            if link.used and read == 0:
                link.used = False  # once: a fresh connection that fails is not retried
                continue
            raise
        except BaseException:
            conn.disconnect()  # unread replies would answer the next call
            raise
        link.used = True
        return results


def redis_available() -> bool:
    """Whether the default cache is Redis (else callers use the cache API)."""
    return _backend() is not None


def _int(value: Any) -> int:
    return 0 if value is None else int(value)


def counter_get(key: str) -> int:
    """The integer counter at ``key`` (0 when missing): one ``GET``."""
    return counters_get([key])[0]


def counters_get(keys: list[str]) -> list[int]:
    """The integer counters at ``keys`` (0 when missing): one ``MGET``."""
    if not redis_available():
        return [int(cache.get(key, 0)) for key in keys]
    values = execute(pack("MGET", *(cache.make_key(key) for key in keys)), 1)[0]
    return [_int(value) for value in values]


def counter_incr(key: str, *, timeout: int) -> int:
    """Add one to the counter at ``key``, creating it (expiring after ``timeout`` seconds)
    when missing; returns the new count. One round trip (``SET NX EX`` and ``INCR``
    pipelined): the key always gets its expiry, whoever creates it."""
    if not redis_available():
        if cache.add(key, 1, timeout=timeout):
            return 1
        return int(cache.incr(key))
    full = cache.make_key(key)
    return int(execute(pack("SET", full, 0, "EX", timeout, "NX") + pack("INCR", full), 2)[1])


# Reads the credentials generation and the caller's failed-authentication count and, only
# when the generation is the one the caller expects and the failures are under the limit,
# counts the request against its rate limit (``SET NX EX`` + ``INCR``, as ``counter_incr``):
# atomically, in one round trip. KEYS: generation, failures, rate counter; ARGV: the expected
# generation, the failure limit ("" for none), the rate counter's expiry in seconds. Returns
# ``{generation, failures, count}``, the count -1 when nothing was counted.
_READ_AND_COUNT = b"""
local generation = tonumber(redis.call('GET', KEYS[1])) or 0
local failures = 0
if ARGV[2] ~= '' then failures = tonumber(redis.call('GET', KEYS[2])) or 0 end
local count = -1
if generation == tonumber(ARGV[1]) and (ARGV[2] == '' or failures < tonumber(ARGV[2])) then
  redis.call('SET', KEYS[3], 0, 'EX', ARGV[3], 'NX')
  count = redis.call('INCR', KEYS[3])
end
return {generation, failures, count}
""".decode()


def read_and_count(
    *,
    generation_key: str,
    failures_key: str | None,
    failure_limit: int | None,
    expected_generation: int,
    count_key: str,
    timeout: int,
) -> tuple[int, int, int | None]:
    """``(generation, failures, count)``: the counters at ``generation_key`` and
    ``failures_key`` (0 when missing) and, only when the generation is
    ``expected_generation`` and the failures are under ``failure_limit`` (None: no limit), the
    counter at ``count_key`` after adding one (created with an expiry of ``timeout`` seconds),
    else None. One ``EVAL``, so the condition and the count are one atomic step in one round
    trip. Raises one of ``REDIS_ERRORS``; needs ``redis_available()``."""
    generation = cache.make_key(generation_key)
    failures = cache.make_key(failures_key) if failures_key is not None else generation
    command = pack(
        "EVAL",
        _READ_AND_COUNT,
        3,
        generation,
        failures,
        cache.make_key(count_key),
        expected_generation,
        "" if failure_limit is None else failure_limit,
        timeout,
    )
    values = execute(command, 1)[0]
    count = int(values[2])
    return int(values[0]), int(values[1]), (None if count < 0 else count)


# Takes back one count of ``counter_incr``/``read_and_count`` (never creating the key: a
# window that has expired stays gone).
_UNCOUNT = b"""
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end
return 0
""".decode()


def counter_uncount(key: str) -> None:
    """Take one back from the counter at ``key`` if it still exists. One round trip."""
    if not redis_available():
        if cache.has_key(key):
            cache.decr(key)
        return
    execute(pack("EVAL", _UNCOUNT, 1, cache.make_key(key)), 1)
