"""Connection reuse without a health-check round trip on every request.

With ``CONN_MAX_AGE`` and ``CONN_HEALTH_CHECKS`` Django keeps a worker's connection between
requests and, at the start of each request, marks it unchecked; the request's first query
then runs a hidden ``SELECT 1`` (``is_usable``) before its own: one more round trip on every
request (through PgBouncer in transaction mode, a server transaction of its own). On the
API's hot paths, which make one query, that doubled the database round trips.

A connection that finished a request less than ``HEALTH_CHECK_AFTER_IDLE`` seconds ago is
taken as healthy: a busy worker never pays the check, an idle one still checks before its
first query (after a database or PgBouncer restart, or an idle timeout, the check finds the
dead connection and Django opens a new one). The window left is a server-side disconnect in
the last few seconds of a busy connection, which the check did not close either (the server
can go away between the check and the query just as well).
"""

from __future__ import annotations

import time
from typing import Any

from celery.signals import task_postrun, task_prerun
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connections

HEALTH_CHECK_AFTER_IDLE = 5.0
_LAST_USED = "_crm_request_finished_at"


def skip_health_check_when_recently_used(**kwargs: Any) -> None:
    """``request_started``, after Django's ``close_old_connections``."""
    now = time.monotonic()
    for conn in connections.all(initialized_only=True):
        finished = getattr(conn, _LAST_USED, None)
        if (
            conn.connection is not None
            and getattr(conn, "health_check_enabled", False)
            and finished is not None
            and now - finished < HEALTH_CHECK_AFTER_IDLE
        ):
            conn.health_check_done = True  # type: ignore[attr-defined]


def note_connection_use(**kwargs: Any) -> None:
    """``request_finished``, after Django's ``close_old_connections`` (which may close)."""
    now = time.monotonic()
    for conn in connections.all(initialized_only=True):
        setattr(conn, _LAST_USED, now if conn.connection is not None else None)


def _eager(task: Any) -> bool:
    """A task run in the caller's process (``apply``, eager mode): its connection, maybe in
    the caller's transaction, is the caller's to manage (Celery's fixup skips them too)."""
    return task is None or bool(getattr(task.request, "is_eager", False))


def task_started(task: Any = None, **kwargs: Any) -> None:
    """``task_prerun``: as at the start of a request."""
    if not _eager(task):
        close_old_connections()
        skip_health_check_when_recently_used()


def task_finished(task: Any = None, **kwargs: Any) -> None:
    """``task_postrun``: as at the end of a request."""
    if not _eager(task):
        close_old_connections()
        note_connection_use()


def connect() -> None:
    # Django connects close_old_connections when django.db is imported, so these run after.
    request_started.connect(skip_health_check_when_recently_used, dispatch_uid="crm-conn-reuse")
    request_finished.connect(note_connection_use, dispatch_uid="crm-conn-used")
    task_prerun.connect(task_started, dispatch_uid="crm-task-conn-reuse")
    task_postrun.connect(task_finished, dispatch_uid="crm-task-conn-used")
