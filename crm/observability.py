"""Structured logs: every line is one JSON object carrying the request id and the tenant.

The request id comes from a valid incoming ``X-Request-ID`` (a proxy or the calling
service set it) or is made here; it is answered in the response's ``X-Request-ID`` and
carried into every Celery task the request causes: ``before_task_publish`` copies it into
the message headers, ``task_prerun`` puts it back in the worker's context, so the task's
lines (and the tasks it queues in turn) carry the same id. A task nobody's request caused
(beat) gets its own task id as request id.

The context lives in ``contextvars`` (one value per thread and per task), read by a logging
filter on the handlers, so libraries' lines (Django, Celery) carry it too. The tenant is the
API credential's (set on authentication) or the task's (``TenantTask``); staff pages, which
may span tenants, log none.
"""

from __future__ import annotations

import logging
import logging.config
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from celery.signals import before_task_publish, setup_logging, task_postrun, task_prerun
from django.conf import settings
from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

from .metrics import observe_request

logger = logging.getLogger("crm.request")

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_META = "HTTP_X_REQUEST_ID"
# What a client-sent id may be: short and plain, so it cannot forge log fields or flood them.
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
# The Celery message headers this module adds.
TASK_REQUEST_ID = "crm_request_id"
TASK_PUBLISHED_AT = "crm_published_at"

request_id_var: ContextVar[str | None] = ContextVar("crm_request_id", default=None)
tenant_var: ContextVar[str | None] = ContextVar("crm_tenant", default=None)


def request_id_from(value: str | None) -> str:
    """The incoming id when it is valid, else a new one (32 hex characters)."""
    if value and REQUEST_ID_RE.match(value):
        return value
    return uuid.uuid4().hex


def log_tenant_set(tenant: Any) -> None:
    """Names the tenant on this context's log lines (its slug)."""
    tenant_var.set(getattr(tenant, "slug", None) or (str(tenant) if tenant else None))


class LogContextFilter(logging.Filter):
    """Adds ``request_id`` and ``tenant`` to every record (``None`` outside a request or
    task). Attached to the handlers, so records of every logger get them."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.tenant = tenant_var.get()
        return True


def logging_config(*, level: str, fmt: str) -> dict[str, Any]:
    """The ``LOGGING`` dict: JSON lines on stderr (``fmt="json"``) or plain text
    (``fmt="plain"``, for reading a terminal), both with the request id and the tenant."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "crm.observability.LogContextFilter"}},
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s "
                "%(tenant)s %(process)d",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
                "timestamp": False,
            },
            "plain": {
                "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(tenant)s] "
                "%(message)s"
            },
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": fmt,
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            # "celery@host ready." whatever the level: operators (and the test and bench
            # harnesses, which wait for it) need to see a worker come up.
            "celery.apps.worker": {"level": "INFO"},
        },
    }


# ----------------------------------------------------------------------------- web


class RequestIdMiddleware:
    """First in the chain: sets the request id (and clears the tenant) for everything the
    request does, answers it in ``X-Request-ID``, records the request's latency by route
    (``crm.metrics``) and logs one line per request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # From META: ``request.headers`` would build a dict of every header on each request.
        request_id = request_id_from(request.META.get(REQUEST_ID_META))
        request.request_id = request_id  # type: ignore[attr-defined]
        # Cleared when the response is closed (``request_finished``), not on the way out of
        # this middleware: Django logs a 4xx/5xx ("django.request") after the middleware.
        request_id_var.set(request_id)
        tenant_var.set(None)
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        response[REQUEST_ID_HEADER] = request_id
        match = getattr(request, "resolver_match", None)
        route = (match.route if match is not None else "") or "<unmatched>"
        observe_request(
            method=request.method or "", route=route, status=response.status_code, seconds=elapsed
        )
        logger.info(
            "%s %s %s",
            request.method,
            route,
            response.status_code,
            extra={
                "method": request.method,
                "route": route,
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 1),
            },
        )
        return response


@receiver(request_finished, dispatch_uid="crm-log-context-clear")
def _request_context_clear(**kwargs: Any) -> None:
    request_id_var.set(None)
    tenant_var.set(None)


# ----------------------------------------------------------------------------- Celery


@setup_logging.connect
def _celery_uses_django_logging(**kwargs: Any) -> None:
    """Workers and beat log through the same handlers as the web (JSON with the context)
    instead of Celery's own setup."""
    logging.config.dictConfig(settings.LOGGING)


@before_task_publish.connect
def _stamp_task(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """The request id of the context that queues the task, and when it was queued (the
    queue-age metric reads it from the oldest message)."""
    if headers is None:
        return
    request_id = request_id_var.get()
    if request_id:
        headers.setdefault(TASK_REQUEST_ID, request_id)
    headers.setdefault(TASK_PUBLISHED_AT, time.time())


def _task_header(task: Any, name: str) -> Any:
    # Celery puts custom message headers on the request itself (protocol 2), and keeps
    # them in ``request.headers`` on some code paths: read both.
    request = task.request
    value = getattr(request, name, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(name)
    return value


@task_prerun.connect
def _task_context(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    request_id = _task_header(task, TASK_REQUEST_ID) if task is not None else None
    request_id_var.set(request_id_from(request_id) if request_id else (task_id or None))
    tenant_var.set(None)


@task_postrun.connect
def _task_context_clear(**kwargs: Any) -> None:
    request_id_var.set(None)
    tenant_var.set(None)
