"""The API's per-request Redis calls (crm.api.redis_fast): the cache's own keys and values,
and a connection that Redis dropped is replaced without losing or doubling a count."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import cache
from redis.exceptions import ResponseError

from crm.api import redis_fast


@pytest.fixture
def key():
    name = f"test-redis-fast-{uuid.uuid4().hex}"
    yield name
    cache.delete(name)


def test_counts_are_the_caches_own_values(key):
    assert redis_fast.counter_get(key) == 0
    assert redis_fast.counter_incr(key, timeout=60) == 1
    assert redis_fast.counter_incr(key, timeout=60) == 2

    assert cache.get(key) == 2
    cache.set(key, 7)
    assert redis_fast.counters_get([key, f"{key}-missing"]) == [7, 0]


def test_a_connection_redis_closed_is_reopened_and_the_count_kept(key):
    redis_fast.counter_incr(key, timeout=60)
    (own_id,) = redis_fast.execute(redis_fast.pack("CLIENT", "ID"), 1)
    cache._cache.get_client(write=True).client_kill_filter(_id=own_id)

    assert redis_fast.counter_incr(key, timeout=60) == 2  # counted once, on a new connection
    assert redis_fast.counter_get(key) == 2


def test_an_error_reply_leaves_the_next_call_in_step(key):
    cache.set(key, "not a number")

    both = redis_fast.pack("INCR", cache.make_key(key)) + redis_fast.pack("PING")

    with pytest.raises(ResponseError):
        redis_fast.execute(both, 2)

    assert redis_fast.counter_get(f"{key}-other") == 0


def test_read_and_count_counts_only_under_the_expected_generation(key):
    generation, failures, counted = f"{key}-gen", f"{key}-fail", f"{key}-count"
    try:
        cache.set(generation, 4)
        cache.set(failures, 1)
        assert redis_fast.read_and_count(
            generation_key=generation,
            failures_key=failures,
            failure_limit=3,
            expected_generation=4,
            count_key=counted,
            timeout=60,
        ) == (4, 1, 1)
        # Another generation: read, nothing counted.
        assert redis_fast.read_and_count(
            generation_key=generation,
            failures_key=failures,
            failure_limit=3,
            expected_generation=3,
            count_key=counted,
            timeout=60,
        ) == (4, 1, None)
        # At the failure limit: nothing counted.
        cache.set(failures, 3)
        assert redis_fast.read_and_count(
            generation_key=generation,
            failures_key=failures,
            failure_limit=3,
            expected_generation=4,
            count_key=counted,
            timeout=60,
        ) == (4, 3, None)
        # No failure limit, and a generation never set (0).
        assert redis_fast.read_and_count(
            generation_key=f"{key}-none",
            failures_key=None,
            failure_limit=None,
            expected_generation=0,
            count_key=counted,
            timeout=60,
        ) == (0, 0, 2)
        assert cache.get(counted) == 2  # the cache's own value
        assert 0 < cache._cache.get_client().ttl(cache.make_key(counted)) <= 60
    finally:
        cache.delete_many([generation, failures, counted])


def test_uncount_takes_one_back_and_never_creates_the_counter(key):
    redis_fast.counter_incr(key, timeout=60)
    redis_fast.counter_incr(key, timeout=60)

    redis_fast.counter_uncount(key)
    redis_fast.counter_uncount(f"{key}-gone")

    assert redis_fast.counter_get(key) == 1
    assert cache.get(f"{key}-gone") is None
