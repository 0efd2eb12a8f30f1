"""Shared pieces: the bench database, statistics, the HTTP server and load clients."""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from crm.devtools.worker import CeleryWorker

ROOT = Path(__file__).resolve().parents[1]
BENCH_DATABASE = "crm_bench"


def bench_database_url(base_url: str, name: str = BENCH_DATABASE, fresh: bool = False) -> str:
    """The same server as ``base_url``, database ``name`` (created when missing; dropped
    first when ``fresh``)."""
    import psycopg

    parts = urlsplit(base_url)
    admin = urlunsplit(parts._replace(path="/postgres", scheme="postgresql"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if fresh:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )


def bench_setup(database: str, fresh: bool = False) -> dict[str, str]:
    """The bench database (created, migrated) and Django set up on it in this process;
    returns the environment for the servers and workers a suite starts."""
    env = {
        **os.environ,
        "DATABASE_URL": bench_database_url(os.environ["DATABASE_URL"], database, fresh),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    migrate(env)
    os.environ.update(DATABASE_URL=env["DATABASE_URL"], DJANGO_SETTINGS_MODULE="crm.settings.base")
    import django

    django.setup()
    return env


def run_meta() -> dict[str, str]:
    """Where and when a suite ran: the machine, PostgreSQL's version, the time."""
    from datetime import UTC, datetime

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = f"PostgreSQL {cursor.fetchone()[0].split()[0]}"
    return {
        **machine(),
        "postgres": postgres,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def spread(values: list[float]) -> dict:
    """Median, min, max and the spread (max - min) as a share of the median."""
    median = statistics.median(values)
    return {
        "runs": [round(v, 1) for v in values],
        "median": round(median, 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
        "spread_pct": round(100 * (max(values) - min(values)) / median, 1) if median else 0.0,
    }


# The API's gunicorn for the HTTP figures of the identity suite and the timeline: one
# process per core (the work is CPU-bound Python), threads to overlap a request's waits on
# PostgreSQL and Redis and to hold keep-alive connections. A sync worker closes the
# connection after every response, so each request paid a TCP connect and accept (and the
# load client a new socket); with 8 clients on 4 sync workers, half the clients waited for a
# worker while the others' requests were in flight.
API_SERVER = {"workers": 2, "worker_class": "gthread", "threads": 4, "keep_alive": 5}


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "memory_gib": f"{mem_kb / 1024 / 1024:.0f}",
        "python": platform.python_version(),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """gunicorn on 127.0.0.1 with the bench database."""

    def __init__(
        self,
        env: dict[str, str],
        workers: int = 4,
        extra: dict | None = None,
        *,
        worker_class: str = "sync",
        threads: int = 1,
        keep_alive: int = 2,
    ) -> None:
        self.config = {
            "workers": workers,
            "worker_class": worker_class,
            "threads": threads,
            "keep_alive_s": keep_alive,
        }
        self.port = free_port()
        self.log = Path(f"/tmp/crm-bench-gunicorn-{self.port}.log")  # noqa: S108
        server_env = {
            **env,
            "DJANGO_SETTINGS_MODULE": "crm.settings.base",
            "DEBUG": "0",
            "API_THROTTLE_RATE": "100000000/min",
            "LOG_LEVEL": "WARNING",
            **(extra or {}),
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "crm.wsgi",
                "-w",
                str(workers),
                "-k",
                worker_class,
                "--threads",
                str(threads),
                "--keep-alive",
                str(keep_alive),
                "-b",
                f"127.0.0.1:{self.port}",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=server_env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )

    def wait(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"gunicorn did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_worker(env: dict[str, str], queue: str, concurrency: int = 2) -> CeleryWorker:
    """A Celery worker (prefork) on one queue, with the bench database; started, not yet
    ready (call ``wait_ready()``)."""
    worker = CeleryWorker(
        queue,
        env={**env, "DJANGO_SETTINGS_MODULE": "crm.settings.base", "LOG_LEVEL": "WARNING"},
        concurrency=concurrency,
        log_path=Path(f"/tmp/crm-bench-worker-{queue}.log"),  # noqa: S108
    )
    worker.start(wait=False)
    return worker


def _client(args) -> tuple[list[float], int, float]:
    """One load client: a keep-alive connection sending ``bodies`` in turn (or GETs of
    ``paths``) until ``count`` requests or ``seconds`` have passed. Returns latencies,
    errors and elapsed time."""
    port, path, headers, bodies, count, seconds, method = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    for i in range(count):
        item = bodies[i % len(bodies)]
        if method == "GET":
            target, body = item, None
        else:
            target, body = path, json.dumps(item)
        t0 = time.perf_counter()
        conn.request(method, target, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - t0)
        if response.status >= 400:
            errors += 1
        if time.perf_counter() - started > seconds:
            break
    return latencies, errors, time.perf_counter() - started


def http_load(
    *,
    port: int,
    path: str,
    headers: dict[str, str],
    bodies: list[dict],
    clients: int,
    requests_per_client: int,
    seconds: float,
    method: str = "POST",
) -> dict[str, float]:
    """``clients`` processes, each with its own connection; bounded in count and time. For
    ``GET``, ``bodies`` are the paths to fetch."""
    chunks = [bodies[i::clients] or bodies for i in range(clients)]
    jobs = [(port, path, headers, chunk, requests_per_client, seconds, method) for chunk in chunks]
    started = time.perf_counter()
    if clients == 1:
        results = [_client(jobs[0])]
    else:
        with multiprocessing.get_context("fork").Pool(clients) as pool:
            results = pool.map(_client, jobs)
    wall = time.perf_counter() - started
    latencies = [latency for result in results for latency in result[0]]
    errors = sum(result[1] for result in results)
    busiest = max(result[2] for result in results)
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": round(len(latencies) / busiest, 1),
        "wall_s": round(wall, 2),
        **summary_ms(latencies),
    }
