"""Test settings: the real PostgreSQL and Redis from the environment, fast hashing."""

from __future__ import annotations

from .base import *  # noqa: F403
from .base import CACHES, STORAGES, env

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# A prefix per run keeps parallel runs on a shared Redis apart.
CACHES["default"]["KEY_PREFIX"] = env.str("CACHE_KEY_PREFIX", default="crm-test")
CELERY_TASK_ALWAYS_EAGER = False
AXES_ENABLED = True

# Static files come from the app finders in tests (no collectstatic run).
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
