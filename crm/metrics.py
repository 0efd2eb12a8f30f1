"""Prometheus metrics at ``/metrics``, behind a bearer token (``METRICS_TOKEN``).

Two kinds of series:

- **Per process**: request latency by route (``crm_http_request_duration_seconds``, a
  histogram labelled with the URL pattern, never the raw path, so ids do not explode the
  series). Under gunicorn set ``PROMETHEUS_MULTIPROC_DIR`` (an empty folder per pod): the
  workers then write their samples there and any of them serves the pod's sum
  (prometheus-client's multiprocess mode).
- **Computed at scrape** from PostgreSQL and Redis, so they are the same whichever process
  answers and need no shared memory between machines: Celery queue depth and the age of
  the oldest message per queue, sends by outcome (counters kept in Redis by the senders),
  and what the apps register with ``crm.registry.register_metrics_source`` (event-ingestion
  lag, journey sweep lag, import progress). Every web pod serves these too: aggregate them
  with ``max`` in queries and alerts.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

import redis
from celery import current_app
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .registry import metrics_sources

logger = logging.getLogger(__name__)

REDIS_TIMEOUT_SECONDS = 2
SENDS_KEY = "crm:metrics:sends"
# kombu's Redis transport keeps a queue's messages of priority 3, 6 and 9 in side lists.
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
_UNACKED_KEY = "unacked"

REQUEST_LATENCY = Histogram(
    "crm_http_request_duration_seconds",
    "Time to answer an HTTP request, by URL route (the pattern), method and status class.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


# The histogram's child per (route, method, status class): ``labels()`` validates and
# looks its arguments up under a lock on every call. Routes are URL patterns, so few.
_latency_children: dict[tuple[str, str, int], Any] = {}


def observe_request(*, method: str, route: str, status: int, seconds: float) -> None:
    key = (route, method, status // 100)
    child = _latency_children.get(key)
    if child is None:
        child = REQUEST_LATENCY.labels(route=route, method=method, status=f"{status // 100}xx")
        _latency_children[key] = child
    child.observe(seconds)


_redis: redis.Redis | None = None


def redis_client() -> redis.Redis:
    """One client per process on ``REDIS_URL`` with short timeouts (probes and metrics must
    answer even when Redis does not)."""
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(
            settings.REDIS_URL.replace("redis+socket://", "unix://", 1),
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
        )
    return _redis


def sends_record(*, outcome: str, count: int = 1) -> None:
    """Adds to the sends-by-outcome counter (``sent``, ``failed``, ``retried``,
    ``skipped_<reason>``). In Redis, so every worker on every machine adds to one counter;
    a Redis failure is logged and never fails the send."""
    if count <= 0:
        return
    try:
        redis_client().hincrby(SENDS_KEY, outcome, count)
    except redis.RedisError:
        logger.warning("could not count %s sends (%s)", count, outcome, exc_info=True)


# ----------------------------------------------------------------------------- at scrape


def backlog_metrics(
    *, count: tuple[str, str], age: tuple[str, str], n: int, oldest: Any, now: Any
) -> list[Metric]:
    """Two gauges for a backlog: how many items wait (``count``: name, help) and how long
    the oldest has waited (``age``; 0 when none). For the apps' metrics sources."""
    seconds = max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
    return [
        GaugeMetricFamily(count[0], count[1], value=n),
        GaugeMetricFamily(age[0], age[1], value=seconds),
    ]


def _oldest_age(client: redis.Redis, key: str, now: float) -> float | None:
    """Age of the message at the head of a kombu Redis list (LPUSHed, so the oldest is
    last), from the publish time ``crm.observability`` stamps on each message."""
    raw = client.lindex(key, -1)
    if raw is None:
        return None
    try:
        published = json.loads(raw)["headers"].get("crm_published_at")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return max(0.0, now - float(published)) if published else None


def celery_queue_metrics(*, now: Any = None) -> Iterator[Metric]:
    """Depth and oldest-message age of each Celery queue, and the messages workers hold
    unacknowledged (acks late): read from the broker's Redis."""
    client = redis_client()
    depth = GaugeMetricFamily(
        "crm_celery_queue_length", "Messages waiting in a Celery queue.", labels=["queue"]
    )
    age = GaugeMetricFamily(
        "crm_celery_queue_oldest_age_seconds",
        "Age of the oldest message waiting in a Celery queue (0 when empty).",
        labels=["queue"],
    )
    stamp = time.time()
    for queue in sorted(q.name for q in current_app.conf.task_queues or ()):
        keys = [queue + suffix for suffix in _PRIORITY_SUFFIXES]
        pipe = client.pipeline()
        for key in keys:
            pipe.llen(key)
        lengths = pipe.execute()
        depth.add_metric([queue], sum(lengths))
        ages = [_oldest_age(client, key, stamp) for key, n in zip(keys, lengths, strict=True) if n]
        age.add_metric([queue], max((a for a in ages if a is not None), default=0.0))
    yield depth
    yield age
    yield GaugeMetricFamily(
        "crm_celery_unacked_messages",
        "Messages delivered to workers and not yet acknowledged (running or lost with a worker).",
        value=client.hlen(_UNACKED_KEY),
    )


def sends_metrics(*, now: Any = None) -> Iterator[Metric]:
    counter = CounterMetricFamily(
        "crm_sends", "Messages handed to the messaging backend, by outcome.", labels=["outcome"]
    )
    for outcome, value in sorted(redis_client().hgetall(SENDS_KEY).items()):
        name = outcome.decode() if isinstance(outcome, bytes) else outcome
        counter.add_metric([name], int(value))
    yield counter


_CRM_SOURCES = {"celery_queues": celery_queue_metrics, "sends": sends_metrics}


class ScrapeTimeCollector(Collector):
    """Every source's series, computed now. A failing source is logged and reported in
    ``crm_metrics_source_up``; the others are still served."""

    def collect(self) -> Iterable[Metric]:
        now = timezone.now()
        up = GaugeMetricFamily(
            "crm_metrics_source_up", "1 when a metrics source answered.", labels=["source"]
        )
        for name, source in {**_CRM_SOURCES, **metrics_sources()}.items():
            try:
                families = list(source(now=now))
            except Exception:  # one broken source must not hide the others
                logger.warning("metrics source %s failed", name, exc_info=True)
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from families
        yield up


class _ProcessCollector(Collector):
    """This process's own series (the default registry), when not in multiprocess mode."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def metrics_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ProcessCollector())
    registry.register(ScrapeTimeCollector())
    return registry


# ----------------------------------------------------------------------------- the view


def _token_ok(request: HttpRequest) -> bool | None:
    """None without a bearer token, else whether it is ``METRICS_TOKEN`` (constant time)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    expected = settings.METRICS_TOKEN
    return bool(expected) and hmac.compare_digest(token.strip().encode(), expected.encode())


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus text format; 401 without ``Authorization: Bearer <METRICS_TOKEN>``,
    403 with another token."""
    ok = _token_ok(request)
    if ok is None:
        response = HttpResponse("Bearer token required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if not ok:
        return HttpResponse("Invalid token.\n", status=403, content_type="text/plain")
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn's ``child_exit`` hook in multiprocess mode (``gunicorn.conf.py``:
    ``from crm.metrics import child_exit``): drops a dead worker's live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
