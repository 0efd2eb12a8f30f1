"""A cursor for big set-wise statements: parameters bound by the server, results in binary.

Django's cursor binds parameters on the client: every element of every array parameter is
quoted into the SQL text, and every timestamp of the result is parsed back from text. For
the event pipeline's batch statements (nine arrays of 500 for the activities, timestamps of
every profile of the batch) that was a large part of the worker's own time. Through
``batch_cursor()`` the arrays travel in PostgreSQL's binary format and the rows come back
in it.

It is Django's ``CursorWrapper`` around a plain psycopg cursor on Django's connection: the
same transaction, the same error classes (``django.db.OperationalError`` and the rest,
which the pipeline's retry rules depend on), the execute wrappers. Nothing outlives the
statement: psycopg prepares none of these (``prepare_threshold`` is off or
``PREPARE_ONLY_WHEN_ASKED``), so it is safe behind PgBouncer in transaction mode.

``hot_cursor()`` is the other way round: for the API's few hottest statements, prepared once
per connection where that is allowed (below).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper


class _BinaryParameters(CursorWrapper):
    """Every ``%s`` placeholder becomes ``%b``: psycopg's automatic choice sends strings,
    and so arrays of strings, in text, quoting each element."""

    def execute(self, sql, params=None):
        return super().execute(sql.replace("%s", "%b"), params)


@contextmanager
def planner_off(setting: str) -> Iterator[CursorWrapper]:
    """A cursor, in a transaction (or savepoint), with the planner setting ``setting``
    (``enable_nestloop``, ``jit``) off for what runs in the block, then set back to what it
    was. ``set_config(..., true)`` is ``SET LOCAL`` (safe behind PgBouncer): when the block
    is nested in a larger transaction (an import), the setting is restored at its end, not
    left on for the rest of that transaction; a failure's savepoint rollback reverts it."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting(%s), set_config(%s, 'off', true)", [setting, setting]
        )
        previous = cursor.fetchone()[0]
        yield cursor
        cursor.execute("SELECT set_config(%s, %s, true)", [setting, previous])


@contextmanager
def batch_cursor() -> Iterator[CursorWrapper]:
    connection.ensure_connection()
    raw = psycopg.Cursor(connection.connection)
    raw.format = psycopg.pq.Format.BINARY
    with _BinaryParameters(raw, connection) as cursor:
        yield cursor


# ----------------------------------------------------------------------------- hot statements

# psycopg's ``prepare_threshold`` when prepared statements are allowed
# (``DATABASE_PREPARED_STATEMENTS``): high enough that psycopg never prepares a statement on
# its own count, so only the statements run through ``hot_cursor`` (``prepare=True``) are.
PREPARE_ONLY_WHEN_ASKED = 2**31 - 1


class _Prepared(CursorWrapper):
    """Executes with ``prepare=True``: psycopg prepares the statement on its first run on a
    connection and then only binds and executes it, so PostgreSQL does not parse and plan it
    again. Where the connection prepares nothing (``prepare_threshold`` None, behind
    PgBouncer) psycopg ignores the flag."""

    def _execute(self, sql, params, *ignored_wrapper_args):
        self.db.validate_no_broken_transaction()
        with self.db.wrap_database_errors:
            return self.cursor.execute(sql, params, prepare=True)


class _PreparedDebug(CursorDebugWrapper, _Prepared):
    """The same, logged in ``connection.queries`` (DEBUG, ``CaptureQueriesContext``) with its
    placeholders: psycopg keeps no text of a prepared statement's run to show."""

    def execute(self, sql, params=None):
        with self.debug_sql(sql, params, use_last_executed_query=False):
            return self._execute_with_wrappers(sql, params, many=False, executor=self._execute)


@contextmanager
def hot_cursor() -> Iterator[CursorWrapper]:
    """A cursor for the API's hottest statements (the identity lookup, the timeline's first
    page): one statement executed thousands of times a second, so small that PostgreSQL spent
    several times longer planning it (0.39 ms: the profile table has fourteen indexes to
    consider) than running it (0.07 ms). Parameters are bound by the server, the statement is
    prepared once per connection where ``DATABASE_PREPARED_STATEMENTS`` allows it, and rows
    come back in text, loaded exactly as Django's own cursor loads them (the connection's
    adapters). Each execute is still one statement in autocommit or the caller's
    transaction: behind PgBouncer in transaction mode nothing is prepared unless the setting
    says PgBouncer keeps prepared statements (1.21+, ``max_prepared_statements``)."""
    # As Django's connection.cursor() does: the health check of a connection idle for a
    # while (CONN_HEALTH_CHECKS, crm.dbconn), then the connection, in this thread only. (The
    # connection itself, not the ``connection`` proxy: each attribute read through the proxy
    # looks the thread's connection up again.)
    db = connections[DEFAULT_DB_ALIAS]
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    with db.wrap_database_errors:
        raw = psycopg.Cursor(db.connection)
    if _TIMESTAMPTZ_LOADER is not None and _utc_timestamps(db):
        raw.adapters.register_loader("timestamptz", _TIMESTAMPTZ_LOADER)
    wrapper = _PreparedDebug if db.queries_logged else _Prepared
    with wrapper(raw, db) as cursor:
        yield cursor


# psycopg's own text loader of timestamptz (in C, with the psycopg[binary] the project
# installs). Django replaces it on its connections with a Python subclass that sets the
# connection's time zone on each value, about 5 µs a value: 51 values on a timeline page.
# Where that time zone is UTC the session's is too (Django sets the session's TimeZone to the
# connection's), and psycopg's loader returns exactly Django's values (tzinfo
# ``datetime.timezone.utc``); elsewhere Django's loader stays.
_TIMESTAMPTZ_LOADER = psycopg.adapters.get_loader(
    psycopg.adapters.types["timestamptz"].oid, psycopg.pq.Format.TEXT
)


def _utc_timestamps(db) -> bool:
    return bool(settings.USE_TZ) and db.timezone is UTC and db.timezone_name == "UTC"
