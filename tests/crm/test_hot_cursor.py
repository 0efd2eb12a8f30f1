"""crm.db.hot_cursor loads rows as Django's own cursor does, with psycopg's C loader for
timestamps where the connection's time zone is UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import connection, connections

from crm import db

pytestmark = pytest.mark.django_db

SQL = (
    "SELECT %s::timestamptz, %s::timestamptz, %s::timestamptz, "
    "'2024-03-31 01:59:59.5+02'::timestamptz, NULL::timestamptz, '{\"a\": 1}'::jsonb, "
    "'2024-02-29'::date"
)
PARAMS = [
    datetime(2024, 1, 1, tzinfo=UTC),
    datetime(2024, 6, 30, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2024, 6, 30, 12, 0, tzinfo=timezone(timedelta(hours=-7))),
]


def _django_row():
    with connection.cursor() as cursor:
        cursor.execute(SQL, PARAMS)
        return cursor.fetchone()


def _hot_row():
    with db.hot_cursor() as cursor:
        cursor.execute(SQL, PARAMS)
        return cursor.fetchone()


def test_the_hot_cursor_loads_exactly_what_djangos_cursor_loads():
    assert db._utc_timestamps(connection)  # the project's settings: the C loader is used

    hot, django = _hot_row(), _django_row()

    assert hot == django
    assert [getattr(v, "tzinfo", None) for v in hot] == [getattr(v, "tzinfo", None) for v in django]
    assert hot[0].tzinfo is UTC


def test_another_time_zone_keeps_djangos_loader(monkeypatch):
    monkeypatch.setattr(db, "_utc_timestamps", lambda _db: False)

    assert _hot_row() == _django_row()


def test_a_connection_in_another_time_zone_is_not_given_the_utc_loader():
    conn = connections["default"]
    conn.close()
    conn.settings_dict["TIME_ZONE"] = "Africa/Johannesburg"
    try:
        for cached in ("timezone", "timezone_name"):
            conn.__dict__.pop(cached, None)
        assert not db._utc_timestamps(conn)
    finally:
        conn.settings_dict["TIME_ZONE"] = None
        for cached in ("timezone", "timezone_name"):
            conn.__dict__.pop(cached, None)
        conn.close()
    assert db._utc_timestamps(conn)
