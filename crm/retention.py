"""Retention: the nightly job that keeps personal data only as long as documented
(docs/privacy.md, "Retention"). Periods come from settings (environment, with defaults):

=================================  =======  ===============================================
setting                            default  then
=================================  =======  ===============================================
``RETENTION_SYNC_LOG_DAYS``        90       sync-log payload and identity hints scrubbed
``RETENTION_MESSAGE_DAYS``         180      a settled message's address and error scrubbed
``RETENTION_INTERACTION_MONTHS``   13       interactions rolled up into daily counts
``RETENTION_AUDIT_MONTHS``         24       audit events deleted
=================================  =======  ===============================================

Each app registers its steps (``crm.registry.register_retention_step``); ``retention_run``
runs them within a time budget. A step walks its table **by primary key** from its
``RetentionMark`` (ids grow with ``created_at``, so the rows older than the cutoff are one
id range at the start of what is left): a batch reads the next ids, keeps those older than
the cutoff, handles that id range in set-wise SQL and moves the mark, all in one
transaction. So a night's work is proportional to a night's new rows, not to the table; a
killed run redoes at most its last batch (rolled back with it); a second run the same night
finds nothing to do (idempotent). The mark row is locked while a batch runs, so two runs
never handle the same range.
"""

from __future__ import annotations

import calendar
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from itertools import takewhile
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from .models import AuditEvent, RetentionMark
from .registry import retention_steps

logger = logging.getLogger(__name__)

BATCH = 5000
# Below the task's 15-minute hard limit; what is left continues in a re-queued run.
BUDGET_SECONDS = 600


def days_before(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)


def months_before(now: datetime, months: int) -> datetime:
    """The same day and time ``months`` calendar months earlier (the month's last day when
    it is shorter)."""
    year, month0 = divmod(now.year * 12 + now.month - 1 - months, 12)
    day = min(now.day, calendar.monthrange(year, month0 + 1)[1])
    return now.replace(year=year, month=month0 + 1, day=day)


def sweep_ids(
    *,
    name: str,
    model: type[models.Model],
    cutoff: datetime,
    deadline: float,
    apply: Callable[..., int],
    time_field: str = "created_at",
    batch: int | None = None,
) -> tuple[int, bool]:
    """Calls ``apply(lo=, hi=)`` for consecutive id ranges ``(lo, hi]`` whose rows are all
    older than ``cutoff``, moving the mark ``name`` with each (see the module docstring).
    Returns the rows ``apply`` reported and whether everything older than the cutoff is done."""
    batch = batch or BATCH
    handled = 0
    while time.monotonic() < deadline:
        with transaction.atomic():
            mark, _ = RetentionMark.objects.select_for_update().get_or_create(name=name)
            rows = list(
                model._default_manager.filter(pk__gt=mark.upto_id)
                .order_by("pk")
                .values_list("pk", time_field)[:batch]
            )
            older = list(takewhile(lambda row: row[1] < cutoff, rows))
            if older:
                hi = older[-1][0]
                handled += apply(lo=mark.upto_id, hi=hi)
                mark.upto_id = hi
                mark.save(update_fields=["upto_id", "updated_at"])
        if len(older) < batch:
            return handled, True
    return handled, False


def sql_step(
    *,
    name: str,
    model: type[models.Model],
    cutoff: Callable[[datetime], datetime],
    statements: Sequence[str],
) -> Callable[..., tuple[int, bool]]:
    """A retention step that runs ``statements`` (set-wise SQL over the id range
    ``%(lo)s < id <= %(hi)s``, with ``%(now)s``) on each batch of ``model``'s rows older than
    ``cutoff(now)``; it reports the rows the statements changed."""

    def step(*, now: datetime, deadline: float) -> tuple[int, bool]:
        def apply(*, lo: int, hi: int) -> int:
            params: dict[str, Any] = {"now": now, "lo": lo, "hi": hi}
            changed = 0
            with connection.cursor() as cursor:
                for sql in statements:
                    cursor.execute(sql, params)
                    changed += max(cursor.rowcount, 0)
            return changed

        return sweep_ids(name=name, model=model, cutoff=cutoff(now), deadline=deadline, apply=apply)

    return step


# Where UPDATE, DELETE on the table are revoked from the application's role (docs/privacy.md,
# append-only), this step fails with a permission error and the maintenance role runs it
# (``manage.py retention_run --step audit_events``).
audit_retention = sql_step(
    name="audit_events",
    model=AuditEvent,
    cutoff=lambda now: months_before(now, settings.RETENTION_AUDIT_MONTHS),
    statements=[
        f'DELETE FROM "{AuditEvent._meta.db_table}" WHERE id > %(lo)s AND id <= %(hi)s'  # noqa: S608
    ],
)


def retention_run(
    *, now: datetime | None = None, budget_seconds: float = BUDGET_SECONDS, only: str = ""
) -> dict[str, tuple[int, bool]]:
    """Runs every registered step (or the one named ``only``) until done or the budget is
    spent: ``{step: (rows handled, finished)}``. A failing step is logged and reported
    unfinished; the others still run."""
    now = now or timezone.now()
    deadline = time.monotonic() + budget_seconds
    results: dict[str, tuple[int, bool]] = {}
    for name, step in retention_steps().items():
        if only and name != only:
            continue
        try:
            results[name] = step(now=now, deadline=deadline)
        except Exception:
            logger.exception("retention step %s failed", name)
            results[name] = (0, False)
        logger.info("retention step %s handled %s rows (finished: %s)", name, *results[name])
    return results
