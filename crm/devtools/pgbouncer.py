"""A local PgBouncer in transaction mode in front of ``DATABASE_URL``'s server.

    python -m crm.devtools.pgbouncer exec -- CMD   # CMD runs with DATABASE_URL through PgBouncer
    python -m crm.devtools.pgbouncer start | stop  # a PgBouncer that outlives the command

Production runs PgBouncer in transaction pooling (``deploy/``): each transaction may meet a
different server session, so nothing may outlive a transaction (docs/operations.md). The
only way to know the code keeps to that is to run it so: ``make test-pgbouncer`` runs the
whole suite through this launcher. It writes its config, log and pid to ``var/pgbouncer/``
(``pool_mode = transaction``, a ``*`` wildcard database entry pointing at the server of
``DATABASE_URL``, so the test database pytest-django creates is reachable too), listens on
127.0.0.1 (``PGBOUNCER_PORT``, default 6432) and sets ``DATABASE_POOLER=pgbouncer`` for the
command, which turns on the settings the pooler needs (``crm/settings/base.py``).

PgBouncer is Debian's package (``make pgbouncer``). It refuses to run as root, so as root it
is started as the ``postgres`` user (``-u``), which then owns ``var/pgbouncer/``.
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
RUN_DIR = ROOT / "var" / "pgbouncer"
DEFAULT_PORT = 6432
RUN_AS = "postgres"  # when started as root: PgBouncer will not run as root


def _binary() -> str:
    found = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )
    if not found:
        raise SystemExit("pgbouncer is not installed: run `make pgbouncer` (Debian's package).")
    return found


def _quote(value: str) -> str:
    """A userlist.txt field: double quotes, a quote inside doubled."""
    return '"' + value.replace('"', '""') + '"'


def config_text(database_url: str, *, port: int, run_dir: Path) -> tuple[str, str]:
    """(pgbouncer.ini, userlist.txt) for a transaction-mode pooler in front of the server of
    ``database_url``. Clients are trusted on loopback; PgBouncer logs in to PostgreSQL with
    the URL's user and password (from the userlist)."""
    parts = urlsplit(database_url)
    user = unquote(parts.username or "postgres")
    password = unquote(parts.password or "")
    host = unquote(parts.hostname or "127.0.0.1")
    server_port = parts.port or 5432
    ini = f"""\
[databases]
; Every database name (the app's and the test database pytest-django creates) goes to the
; same server, as the same user.
* = host={host} port={server_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {run_dir / "userlist.txt"}
admin_users = {user}
pool_mode = transaction
; Prepared statements do not survive a change of server session: Django's psycopg
; connections prepare none (prepare_threshold None); PgBouncer 1.21+ would also need
; max_prepared_statements = 0, which is its default.
default_pool_size = 20
max_client_conn = 1000
; A test run touches many databases (the test database, the workers' and the benchmark
; smoke runs'); idle server connections to each would otherwise stay open for ten minutes
; and together reach the server's max_connections (100), after which new pools cannot log
; in and their clients queue silently. Cap the user's server connections across all
; databases (PgBouncer closes another pool's idle ones to make room), release idle ones
; soon, and make a client that still waits fail loudly instead of hanging.
max_user_connections = 60
server_idle_timeout = 15
query_wait_timeout = 60
server_reset_query =
logfile = {run_dir / "pgbouncer.log"}
pidfile = {run_dir / "pgbouncer.pid"}
"""
    userlist = f"{_quote(user)} {_quote(password)}\n"
    return ini, userlist


def pooled_url(database_url: str, port: int) -> str:
    """``database_url`` with the host and port of the local PgBouncer."""
    parts = urlsplit(database_url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start(database_url: str, port: int, run_dir: Path = RUN_DIR) -> None:
    """Writes the config and starts PgBouncer as a daemon; returns once it accepts
    connections."""
    if _port_open(port):
        raise SystemExit(f"127.0.0.1:{port} is taken: stop that PgBouncer or set PGBOUNCER_PORT.")
    run_dir.mkdir(parents=True, exist_ok=True)
    ini, userlist = config_text(database_url, port=port, run_dir=run_dir)
    (run_dir / "pgbouncer.ini").write_text(ini)
    (run_dir / "userlist.txt").write_text(userlist)
    (run_dir / "userlist.txt").chmod(0o600)
    command = [_binary(), "-d", "-q", str(run_dir / "pgbouncer.ini")]
    if os.geteuid() == 0:
        account = pwd.getpwnam(RUN_AS)
        for path in (run_dir, *run_dir.iterdir()):
            os.chown(path, account.pw_uid, account.pw_gid)
        command[1:1] = ["-u", RUN_AS]
    subprocess.run(command, check=True)
    deadline = time.monotonic() + 15
    while not _port_open(port):
        if time.monotonic() > deadline:
            log = run_dir / "pgbouncer.log"
            raise SystemExit(f"PgBouncer did not start:\n{log.read_text() if log.exists() else ''}")
        time.sleep(0.1)


def stop(run_dir: Path = RUN_DIR) -> None:
    """Stops the PgBouncer started by ``start`` (its pid file), waiting for it to exit."""
    pidfile = run_dir / "pgbouncer.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def drop_test_database(database_url: str) -> None:
    """Drops pytest-django's test database of ``database_url`` (``test_`` + its name) on the
    server itself, not through PgBouncer. Through the pooler, pytest-django creates it (the
    wildcard entry reaches it) but cannot drop it at the end: PgBouncer still holds server
    connections to it. So the pooled run keeps it (``--reuse-db``) and this removes it before
    the run (a fresh schema) and after it. Under pytest-xdist each worker has its own,
    ``test_<name>_gw0``, ``test_<name>_gw1``, ...: those go too."""
    import psycopg

    parts = urlsplit(database_url)
    name = "test_" + unquote(parts.path.lstrip("/"))
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        workers = conn.execute(
            "SELECT datname FROM pg_database WHERE datname ~ %s",
            ["^" + re.escape(name) + "_gw[0-9]+$"],
        ).fetchall()
        for database in [name, *(row[0] for row in workers)]:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def command_exec(database_url: str, port: int, command: list[str], *, fresh_test_db: bool) -> int:
    if fresh_test_db:
        drop_test_database(database_url)
    from crm.celery import SETTINGS_MODULE_DEFAULTED

    start(database_url, port)
    env = {
        **os.environ,
        "DATABASE_URL": pooled_url(database_url, port),
        "DATABASE_POOLER": "pgbouncer",
    }
    if SETTINGS_MODULE_DEFAULTED:  # importing crm set it; pytest has its own
        env.pop("DJANGO_SETTINGS_MODULE", None)
    try:
        return subprocess.call(command, cwd=ROOT, env=env)
    finally:
        stop()
        if fresh_test_db:
            drop_test_database(database_url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crm.devtools.pgbouncer", description=__doc__)
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("PGBOUNCER_PORT", DEFAULT_PORT))
    )
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("start", help="start PgBouncer and print the pooled DATABASE_URL")
    sub.add_parser("stop", help="stop the PgBouncer started by `start`")
    exe = sub.add_parser("exec", help="run a command with DATABASE_URL through PgBouncer")
    exe.add_argument(
        "--fresh-test-database",
        action="store_true",
        help="drop pytest-django's test database on the server before and after (see "
        "drop_test_database); run pytest with --reuse-db",
    )
    exe.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.action == "stop":
        stop()
        return 0
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url:
        print("DATABASE_URL is not set (run it under `python -m crm.local exec`).", file=sys.stderr)
        return 2
    if args.action == "start":
        start(database_url, args.port)
        print(pooled_url(database_url, args.port))
        return 0
    command = [part for part in args.command if part != "--"]
    if not command:
        print("exec needs a command after --", file=sys.stderr)
        return 2
    return command_exec(database_url, args.port, command, fresh_test_db=args.fresh_test_database)


if __name__ == "__main__":
    sys.exit(main())
