"""The code works through PgBouncer in transaction pooling: nothing outlives a transaction.

Behind the pooler each transaction (each statement, in autocommit) may run on a different
server session, so session state set in one is missing, or leaks to another client, in the
next. Two guards:

- the source of every app is scanned for SQL that keeps state in the session: session-level
  advisory locks, ``SET`` without ``LOCAL``, ``set_config(..., false)``, ``LISTEN`` /
  ``NOTIFY``, SQL-level cursors and prepared statements, and temporary tables that are not
  dropped at commit;
- ``DATABASE_POOLER=pgbouncer`` turns off what Django itself would keep in the session
  (server-side cursors of ``.iterator()`` and psycopg's prepared statements).

``make test-pgbouncer`` runs the whole suite through a real PgBouncer in transaction mode.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("crm", "customers", "marketing", "automation", "social", "backfill", "scoring")

# Each pattern is one kind of session state, named for the failure message.
SESSION_STATE = {
    "session-level advisory lock (use pg_advisory_xact_lock)": re.compile(
        r"pg_(try_)?advisory_(un)?lock(_shared|_all)?\s*\(", re.IGNORECASE
    ),
    # A SQL string that starts with SET (right after its opening quote), but not SET LOCAL.
    "SET outside a transaction (use SET LOCAL)": re.compile(
        r"""(^|[(\[,=])\s*[rRfFbB]{0,2}("{1,3}|'{1,3})\s*SET\s+(?!LOCAL\b)(SESSION\s+)?"""
        r"""[\w."]+\s*(=|\bTO\b)""",
        re.IGNORECASE | re.MULTILINE,
    ),
    "set_config(..., false) sets the session (use true)": re.compile(
        r"set_config\s*\([^)]*,\s*false\s*\)", re.IGNORECASE
    ),
    "LISTEN/NOTIFY need a session of their own": re.compile(
        r"""["']\s*(UN)?LISTEN\s+\w|["']\s*NOTIFY\s+\w|pg_notify\s*\(""", re.IGNORECASE
    ),
    "SQL cursor (DECLARE ... CURSOR) outlives its transaction WITH HOLD": re.compile(
        r"\bDECLARE\s+\w+\s+(BINARY\s+|INSENSITIVE\s+|(NO\s+)?SCROLL\s+)*CURSOR\b",
        re.IGNORECASE,
    ),
    "PREPARE lives in the session": re.compile(r"""["']\s*PREPARE\s+\w+\s+AS\b""", re.IGNORECASE),
}
TEMP_TABLE = re.compile(r"CREATE\s+(TEMP|TEMPORARY)\s+TABLE\b", re.IGNORECASE)
TEMP_TABLE_WINDOW = 160  # characters after CREATE TEMP TABLE in which ON COMMIT DROP must be


def session_state_in(text: str) -> list[str]:
    """The kinds of session state ``text`` (source code) sets up."""
    found = [name for name, pattern in SESSION_STATE.items() if pattern.search(text)]
    for match in TEMP_TABLE.finditer(text):
        window = text[match.end() : match.end() + TEMP_TABLE_WINDOW]
        if not re.search(r"ON\s+COMMIT\s+DROP", window, re.IGNORECASE):
            found.append("temporary table kept after commit (use ON COMMIT DROP)")
    return found


def _sources():
    for app in APPS:
        yield from sorted((ROOT / app).rglob("*.py"))


def test_no_app_code_keeps_state_in_the_database_session():
    offenders = [
        f"{path.relative_to(ROOT)}: {kind}"
        for path in _sources()
        for kind in session_state_in(path.read_text())
    ]
    assert offenders == []


def test_the_scan_finds_what_it_looks_for():
    """The guard above can fail: each form of session state is caught, and the
    transaction-scoped forms the code uses are not."""
    for sql in (
        'cursor.execute("SELECT pg_advisory_lock(42)")',
        "cursor.execute('SELECT pg_try_advisory_lock(hashtext(%s))', [key])",
        'cursor.execute("SET statement_timeout = 5000")',
        "cursor.execute('SET SESSION work_mem TO \"64MB\"')",
        "cursor.execute(\"SELECT set_config('app.tenant', %s, false)\", [t])",
        'cursor.execute("LISTEN events")',
        "cursor.execute(\"SELECT pg_notify('events', 'x')\")",
        'cursor.execute("DECLARE c CURSOR WITH HOLD FOR SELECT 1")',
        'cursor.execute("PREPARE q AS SELECT 1")',
        'cursor.execute("CREATE TEMP TABLE t (id int)")',
        'cursor.execute("CREATE TEMPORARY TABLE t AS SELECT 1")',
    ):
        assert session_state_in(sql), sql
    for fine in (
        'cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [key])',
        'cursor.execute("SET LOCAL statement_timeout = 5000")',
        "cursor.execute(\"SELECT set_config('app.tenant', %s, true)\", [t])",
        'cursor.execute("CREATE TEMP TABLE seg_match (id uuid PRIMARY KEY) ON COMMIT DROP")',
        "CREATE TEMP TABLE bf_people ON COMMIT DROP AS SELECT 1",
        'f"UPDATE "{TABLE}" SET grp = 1 WHERE id = %s"',
        "UPDATE t SET status = 'SENT', sent_at = %s",
    ):
        assert not session_state_in(fine), fine


def _database_settings(**env: str) -> str:
    """The default database's pooler-related settings as the settings module builds them."""
    code = (
        "from django.conf import settings; d = settings.DATABASES['default']; "
        "print(d.get('DISABLE_SERVER_SIDE_CURSORS', False), "
        "d['OPTIONS'].get('prepare_threshold', 'unset'), d['CONN_HEALTH_CHECKS'])"
    )
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "crm.settings.base"}
    environment.pop("DATABASE_POOLER", None)
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_behind_pgbouncer_no_server_side_cursors_and_no_prepared_statements():
    # .iterator() would DECLARE a cursor WITH HOLD in autocommit (it outlives the
    # transaction); psycopg would PREPARE statements after a few runs.
    assert _database_settings(DATABASE_POOLER="pgbouncer") == "True None True"
    # Straight to PostgreSQL, .iterator() streams through server-side cursors.
    assert _database_settings().startswith("False ")


def test_an_unknown_pooler_is_refused():
    result = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; settings.DATABASES"],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "crm.settings.base",
            "DATABASE_POOLER": "pgpool",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "DATABASE_POOLER must be pgbouncer or unset" in result.stderr


def test_straight_to_postgresql_only_the_hot_statements_are_prepared():
    # psycopg never prepares on its own count (the threshold is out of reach); crm.db's
    # hot_cursor asks for each of its statements.
    assert _database_settings() == f"False {2**31 - 1} True"
    assert _database_settings(DATABASE_PREPARED_STATEMENTS="0") == "False unset True"
    # PgBouncer 1.21+ with max_prepared_statements keeps them: only when the operator says so.
    assert _database_settings(DATABASE_POOLER="pgbouncer", DATABASE_PREPARED_STATEMENTS="1") == (
        f"True {2**31 - 1} True"
    )
