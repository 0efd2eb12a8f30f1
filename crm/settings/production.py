"""Production settings: refuse to start without real secrets, and pass `check --deploy`."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import (
    DEV_ENCRYPTION_KEY,
    DEV_JWT_SECRET,
    DEV_SECRET_KEY,
    ENCRYPTION_KEYS,
    JWT_SECRET,
    SECRET_KEY,
    env,
)

_missing = [
    name
    for name, value, dev_default in (
        ("SECRET_KEY", SECRET_KEY, DEV_SECRET_KEY),
        ("JWT_SECRET", JWT_SECRET, DEV_JWT_SECRET),
        ("ENCRYPTION_KEYS", ",".join(ENCRYPTION_KEYS), DEV_ENCRYPTION_KEY),
    )
    if not value or value == dev_default
]
for _required in ("REDIS_URL", "ALLOWED_HOSTS"):
    if not env.str(_required, default=""):
        _missing.append(_required)
if _missing:
    raise ImproperlyConfigured(
        "Production settings need these environment variables set to real values: "
        + ", ".join(_missing)
        + " (see docs/configuration.md)."
    )
if len(JWT_SECRET) < 32:
    raise ImproperlyConfigured("JWT_SECRET must be at least 32 characters.")

DEBUG = False
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"
# /healthz and /readyz are probed over plain HTTP inside the cluster.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
