"""Probes: ``/healthz`` (the process answers) and ``/readyz`` (the database, the Celery
broker and the cache answer).

``/readyz`` names each check, with how long it took, and the last beat heartbeat (not a
condition of readiness: a web pod is ready to serve while beat restarts; alerts watch it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from celery import current_app
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .metrics import REDIS_TIMEOUT_SECONDS
from .tasks import BEAT_HEARTBEAT_KEY

logger = logging.getLogger(__name__)
PROBE_TIMEOUT_SECONDS = REDIS_TIMEOUT_SECONDS


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_broker() -> None:
    """A connection to the Celery broker, as the web uses it to queue tasks (kombu, with the
    broker URL and transport options of the settings), and one round trip on it."""
    with current_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=0, timeout=PROBE_TIMEOUT_SECONDS)
        conn.default_channel.client.ping()


def _check_cache() -> None:
    """The cache (Redis): sessions of throttles, the beat heartbeat, import progress."""
    cache.get(BEAT_HEARTBEAT_KEY)


CHECKS: dict[str, Callable[[], None]] = {
    "database": _check_database,
    "broker": _check_broker,
    "cache": _check_cache,
}


@never_cache
@require_GET
def readyz(request):
    checks: dict[str, str] = {}
    timings: dict[str, float] = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
            checks[name] = "ok"
        except Exception:  # any failure means "not ready"; the log says why
            logger.warning("readiness check %s failed", name, exc_info=True)
            checks[name] = "unavailable"
        timings[name] = round((time.perf_counter() - started) * 1000, 1)
    ready = all(value == "ok" for value in checks.values())
    beat = None
    if checks["cache"] == "ok":
        beat = cache.get(BEAT_HEARTBEAT_KEY)
    return JsonResponse(
        {
            "status": "ok" if ready else "unavailable",
            "checks": checks,
            "took_ms": timings,
            "beat_last_seen": beat,
        },
        status=200 if ready else 503,
    )
