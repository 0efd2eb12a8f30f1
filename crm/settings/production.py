"""Production settings: refuse to start without real secrets, and pass `check --deploy`."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import (
    ALLOWED_HOSTS,
    DEV_ENCRYPTION_KEY,
    DEV_JWT_SECRET,
    DEV_METRICS_TOKEN,
    DEV_SECRET_KEY,
    DEV_WEBHOOK_SECRET,
    EMAIL_BACKEND,
    ENCRYPTION_KEYS,
    JWT_SECRET,
    MESSAGING_BACKEND,
    METRICS_TOKEN,
    PUBLIC_BASE_URL,
    SECRET_KEY,
    SECRET_KEY_FALLBACKS,
    env,
)

MIN_WEBHOOK_SECRET_LENGTH = 16
MIN_METRICS_TOKEN_LENGTH = 32
PLACEHOLDER_PREFIX = "replace-with-"
NON_DELIVERING_EMAIL_BACKENDS = {
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
}


def _is_local_ip(host: str) -> bool:
    """Loopback, unspecified (0.0.0.0), private or link-local: not reachable from a
    recipient's mail client."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return (
        address.is_loopback or address.is_unspecified or address.is_private or address.is_link_local
    )


_missing = [
    name
    for name, value, dev_default in (
        ("SECRET_KEY", SECRET_KEY, DEV_SECRET_KEY),
        ("JWT_SECRET", JWT_SECRET, DEV_JWT_SECRET),
        ("ENCRYPTION_KEYS", ",".join(ENCRYPTION_KEYS), DEV_ENCRYPTION_KEY),
        ("METRICS_TOKEN", METRICS_TOKEN, DEV_METRICS_TOKEN),
    )
    if not value or value == dev_default
]
for _required in ("REDIS_URL", "ALLOWED_HOSTS", "PUBLIC_BASE_URL"):
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

# Each of these would start fine and fail people later: refuse them now, naming the variable.
_problems: list[str] = []

if DEV_ENCRYPTION_KEY in ENCRYPTION_KEYS:
    _problems.append("ENCRYPTION_KEYS must not contain the development key.")
for _position, _key in enumerate(ENCRYPTION_KEYS, start=1):
    try:
        Fernet(_key)
    except (ValueError, TypeError):
        _problems.append(
            f"ENCRYPTION_KEYS: key {_position} is not a Fernet key (32 url-safe base64 bytes)."
        )

# The webhook secret: the http backend needs one (base settings refuse it without); with the
# local backend nothing calls the webhook, so it stays off (refuses every call) until one is
# set. The development secret, written in the repository, is never accepted.
MESSAGING_WEBHOOK_SECRET = env.str("MESSAGING_WEBHOOK_SECRET", default="")
if MESSAGING_WEBHOOK_SECRET == DEV_WEBHOOK_SECRET:
    _problems.append("MESSAGING_WEBHOOK_SECRET must not be the development secret.")
elif MESSAGING_WEBHOOK_SECRET and len(MESSAGING_WEBHOOK_SECRET) < MIN_WEBHOOK_SECRET_LENGTH:
    _problems.append(
        f"MESSAGING_WEBHOOK_SECRET must be at least {MIN_WEBHOOK_SECRET_LENGTH} characters."
    )

if len(METRICS_TOKEN) < MIN_METRICS_TOKEN_LENGTH:
    _problems.append(f"METRICS_TOKEN must be at least {MIN_METRICS_TOKEN_LENGTH} characters.")

if DEV_SECRET_KEY in SECRET_KEY_FALLBACKS:
    _problems.append("SECRET_KEY_FALLBACKS must not contain the development key.")

# .env.example's placeholders are in the repository too.
for _name, _value in (
    ("SECRET_KEY", SECRET_KEY),
    ("JWT_SECRET", JWT_SECRET),
    ("MESSAGING_WEBHOOK_SECRET", MESSAGING_WEBHOOK_SECRET),
    ("METRICS_TOKEN", METRICS_TOKEN),
):
    if _value.startswith(PLACEHOLDER_PREFIX):
        _problems.append(f"{_name} is still the .env.example placeholder.")

if "*" in ALLOWED_HOSTS:
    _problems.append("ALLOWED_HOSTS must name the hosts; * accepts any Host header.")

# Every unsubscribe, open and click link in real email starts with PUBLIC_BASE_URL.
_public = urlsplit(PUBLIC_BASE_URL)
_public_host = (_public.hostname or "").lower()
if _public.scheme != "https" or not _public_host:
    _problems.append(
        "PUBLIC_BASE_URL must be the CRM's public https:// address "
        "(one-click unsubscribe needs HTTPS)."
    )
elif (
    _public_host == "localhost" or _public_host.endswith(".localhost") or _is_local_ip(_public_host)
):
    _problems.append(
        f"PUBLIC_BASE_URL points at {_public_host}: recipients cannot reach that address."
    )

# The local backend sends email itself: a console, in-memory, file or dummy backend would
# mark messages SENT that nobody receives.
if MESSAGING_BACKEND == "local" and EMAIL_BACKEND in NON_DELIVERING_EMAIL_BACKENDS:
    _problems.append(
        "EMAIL_URL must be an SMTP server (smtp://, smtp+tls://, smtp+ssl://) with "
        f"MESSAGING_BACKEND=local; {EMAIL_BACKEND.rsplit('.', 2)[-2]} delivers nothing."
    )

if _problems:
    raise ImproperlyConfigured(
        "Production settings refused: " + " ".join(_problems) + " (see docs/configuration.md)."
    )

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
# /healthz and /readyz are probed, /metrics scraped, over plain HTTP inside the cluster.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
