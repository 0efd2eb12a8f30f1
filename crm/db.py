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
statement: psycopg prepares no statement (Django turns ``prepare_threshold`` off), so it is
safe behind PgBouncer in transaction mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import connection
from django.db.backends.utils import CursorWrapper


class _BinaryParameters(CursorWrapper):
    """Every ``%s`` placeholder becomes ``%b``: psycopg's automatic choice sends strings,
    and so arrays of strings, in text, quoting each element."""

    def execute(self, sql, params=None):
        return super().execute(sql.replace("%s", "%b"), params)


@contextmanager
def batch_cursor() -> Iterator[CursorWrapper]:
    connection.ensure_connection()
    raw = psycopg.Cursor(connection.connection)
    raw.format = psycopg.pq.Format.BINARY
    with _BinaryParameters(raw, connection) as cursor:
        yield cursor
