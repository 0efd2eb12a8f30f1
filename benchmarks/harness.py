"""Shared pieces: the bench database, statistics, the HTTP server and load clients."""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import platform
import resource
import runpy
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
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


# The server settings the figures depend on most, recorded with each run (docs/operations.md,
# "PostgreSQL settings", says what production uses).
POSTGRES_SETTINGS = (
    "shared_buffers",
    "max_wal_size",
    "synchronous_commit",
    "wal_compression",
    "jit",
    "autovacuum",
)


def run_meta() -> dict[str, Any]:
    """Where and when a suite ran: the machine, PostgreSQL's version and main settings, the
    time."""
    from datetime import UTC, datetime

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = f"PostgreSQL {cursor.fetchone()[0].split()[0]}"
        cursor.execute(
            "SELECT name, current_setting(name) FROM unnest(%s::text[]) AS name ORDER BY name",
            [list(POSTGRES_SETTINGS)],
        )
        postgres += " (" + ", ".join(f"{name} {value}" for name, value in cursor.fetchall()) + ")"
    return {
        **machine(),
        "postgres": postgres,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "reference": reference_work(),
    }


# A fixed piece of work on each side, timed when a run starts: VMs of the same type have run
# the same code 1.4-2x apart (docs/benchmarks.md, "Comparing runs"), and these two figures tell
# a slower machine from a slower commit. Best of 5, so a moment's other work does not count.
REFERENCE_SQL = "SELECT sum(length(md5(i::text))) FROM generate_series(1, 100000) AS i"
REFERENCE_ROUNDS = 5


def _reference_python() -> None:
    rows = [{"id": i, "email": f"member{i}@example.com", "tags": ["a", "b"]} for i in range(20_000)]
    json.loads(json.dumps(rows))
    sorted(row["email"].upper() for row in rows)


def reference_work() -> dict[str, float]:
    """Milliseconds of the reference work in this process (Python: building, encoding,
    decoding and sorting 20,000 small records) and in its PostgreSQL backend (``REFERENCE_SQL``,
    JIT off); lower is faster."""
    from django.db import connection

    def best(work: Callable[[], Any]) -> float:
        times = []
        for _ in range(REFERENCE_ROUNDS):
            started = time.perf_counter()
            work()
            times.append(time.perf_counter() - started)
        return round(min(times) * 1000, 1)

    with connection.cursor() as cursor:
        cursor.execute("SET jit = off")
        try:
            postgres = best(lambda: cursor.execute(REFERENCE_SQL))
        finally:
            cursor.execute("RESET jit")
    return {"python_ms": best(_reference_python), "postgres_ms": postgres}


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


def load_runs(measured: list[dict]) -> dict:
    """The repeated runs of one HTTP figure: median and spread of each, and the median CPU
    time per request of each part (server, PostgreSQL, load clients) when measured."""
    result = {
        "clients": measured[0]["clients"],
        "generator": measured[0].get("generator", "python"),
        "requests_per_run": measured[0]["requests"],
        "requests": sum(m["requests"] for m in measured),
        "errors": sum(m["errors"] for m in measured),
        "median_ms": spread([m["median_ms"] for m in measured]),
        "p99_ms": spread([m["p99_ms"] for m in measured]),
        "requests_per_s": spread([m["requests_per_s"] for m in measured]),
    }
    cpu = [m["cpu_us_per_request"] for m in measured if "cpu_us_per_request" in m]
    if cpu:
        result["cpu_us_per_request"] = {
            name: round(statistics.median(c[name] for c in cpu)) for name in cpu[0]
        }
        result["cpu_busy_of_2"] = round(statistics.median(m["cpu_busy_of_2"] for m in measured), 2)
    return result


# The API's gunicorn for the HTTP figures of the identity suite and the timeline: one
# process per core (the work is CPU-bound Python), threads to overlap a request's waits on
# PostgreSQL and Redis and to hold keep-alive connections. A sync worker closes the
# connection after every response, so each request paid a TCP connect and accept (and the
# load client a new socket); with 8 clients on 4 sync workers, half the clients waited for a
# worker while the others' requests were in flight. The worker class is production's
# (gunicorn.conf.py; crm/web_worker.py: gthread that spreads connections over the workers
# and answers a kept-alive connection's next request on the thread that answered the last).
GUNICORN_CONF = ROOT / "gunicorn.conf.py"
API_SERVER = {
    "workers": 2,
    "worker_class": runpy.run_path(str(GUNICORN_CONF))["worker_class"],
    "threads": 4,
    "keep_alive": 5,
}


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


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after "pid (comm)" (state is field 0, the parent's
    pid field 1), or None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (0 when it is gone)."""
    fields = proc_stat(pid)
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS if fields else 0.0


def reaped_children_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process's children that have exited and been waited for
    (cutime + cstime; 0 when the process is gone)."""
    fields = proc_stat(pid)
    return (int(fields[13]) + int(fields[14])) / _CLOCK_TICKS if fields else 0.0


def process_and_children(pid: int) -> list[int]:
    """A process and its children (a server's master and workers, a worker's pool)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return [pid, *map(int, children)]


def postgres_backends(database: str) -> list[int]:
    """The PostgreSQL backends connected to ``database`` (by their process titles)."""
    pids = []
    marker = f" {database} ".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"postgres: ") and marker in title:
            pids.append(int(entry.name))
    return pids


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# How long after the first worker answers the others are given to finish loading.
WORKERS_BOOT_SECONDS = 2.0


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
        self.env = env
        self.log = Path(f"/tmp/crm-bench-gunicorn-{self.port}.log")  # noqa: S108
        server_env = {
            **env,
            "DJANGO_SETTINGS_MODULE": "crm.settings.base",
            "DEBUG": "0",
            "API_THROTTLE_RATE": "100000000/min",
            "LOG_LEVEL": "WARNING",
            # gunicorn.conf.py (read from ROOT) logs every request by default; not here.
            "GUNICORN_ACCESS_LOG": "",
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

    def processes(self) -> list[int]:
        """The master and its workers."""
        return process_and_children(self.process.pid)

    def backends(self) -> list[int]:
        """The PostgreSQL backends connected to the bench database (its workers'
        connections; the suite's own is idle while a load runs)."""
        return postgres_backends(urlsplit(self.env["DATABASE_URL"]).path.lstrip("/"))

    def wait(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    # One worker answers; the others load the application in the same
                    # moments. A load started before they are up puts every connection
                    # on the first (one process: one CPU under its GIL).
                    time.sleep(WORKERS_BOOT_SECONDS)
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
    """One load client: a keep-alive connection sending ``bodies`` (objects, or JSON already
    encoded as bytes) in turn (or GETs of ``paths``) until ``count`` requests or ``seconds``
    have passed. Returns latencies, errors and elapsed time."""
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
            # A body may come encoded already (bytes), so a load client spends its CPU on
            # the requests, not on building JSON, while the server it measures shares the cores.
            target, body = path, item if isinstance(item, bytes) else json.dumps(item)
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
    bodies: list,
    clients: int,
    requests_per_client: int,
    seconds: float,
    method: str = "POST",
    server: Server | None = None,
) -> dict:
    """``clients`` processes, each with its own connection; bounded in count and time. For
    ``GET``, ``bodies`` are the paths to fetch. With ``server``, the figures include the CPU
    time per request of the server, its PostgreSQL backends and the load clients."""
    chunks = [bodies[i::clients] or bodies for i in range(clients)]
    jobs = [(port, path, headers, chunk, requests_per_client, seconds, method) for chunk in chunks]
    cpu = _CpuMeter(server)
    if clients == 1:
        results = [_client(jobs[0])]
    else:
        with multiprocessing.get_context("fork").Pool(clients) as pool:
            results = pool.map(_client, jobs)
    latencies = [latency for result in results for latency in result[0]]
    errors = sum(result[1] for result in results)
    busiest = max(result[2] for result in results)
    return {
        "clients": clients,
        "generator": "python",
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": round(len(latencies) / busiest, 1),
        "wall_s": round(cpu.wall(), 2),
        **summary_ms(latencies),
        **cpu.per_request(len(latencies)),
    }


class ProcessCpu:
    """CPU seconds used by named groups of processes from now on. ``groups`` maps a name to
    a callable listing the group's live pids (a server's workers, a database's backends). A
    process counts from its first reading (from zero when it first appears after the start:
    it started meanwhile) to its last; one that has gone keeps its last reading, so what it
    used after that reading is missed unless the caller reads often (``read``) or counts
    exited processes another way (their parent's reaped children)."""

    def __init__(self, groups: dict[str, Callable[[], Iterable[int]]]) -> None:
        self.groups = groups
        self.first: dict[tuple[str, int], float] = {}
        self.last: dict[tuple[str, int], float] = {}
        self.read(initial=True)

    def read(self, *, initial: bool = False, rescan: bool = True) -> None:
        """One reading of every process; without ``rescan``, only the ones already known
        (listing a database's backends walks /proc)."""
        for name, pids_of in self.groups.items():
            pids = pids_of() if rescan else [pid for kind, pid in self.last if kind == name]
            for pid in pids:
                cpu = process_cpu_seconds(pid)
                if not cpu and (name, pid) in self.last:
                    continue  # gone: keep its last reading
                self.first.setdefault((name, pid), cpu if initial else 0.0)
                self.last[(name, pid)] = cpu

    def used(self) -> dict[str, float]:
        """CPU seconds each group used since the start (a last reading first)."""
        self.read()
        used = dict.fromkeys(self.groups, 0.0)
        for (name, pid), cpu in self.last.items():
            used[name] += max(0.0, cpu - self.first[(name, pid)])
        return used


class _CpuMeter:
    """CPU time spent during a load: gunicorn (master and workers), its PostgreSQL backends
    and the load clients (this process and its children: ``resource.RUSAGE_CHILDREN`` counts
    children once they have been waited for). Redis, shared with other work, is left out.

    Workers recycle their database connections (``CONN_MAX_AGE``), so backends come and go
    during a run: a thread takes a reading every 0.2 s (and looks for new backends every
    second). What a backend used in its last 0.2 s is missed; the thread's own CPU is taken
    off the clients' figure."""

    POLL_SECONDS = 0.2
    RESCAN_EVERY = 5

    def __init__(self, server: Server | None) -> None:
        self.server = server
        self.started = time.perf_counter()
        self.children_before = self._children()
        self.poller_cpu = 0.0
        self.stopping = threading.Event()
        self.processes: ProcessCpu | None = None
        self.thread: threading.Thread | None = None
        if server is not None:
            self.processes = ProcessCpu({"server": server.processes, "postgres": server.backends})
            self.thread = threading.Thread(target=self._poll, args=(self.processes,), daemon=True)
            self.thread.start()

    def _poll(self, processes: ProcessCpu) -> None:
        rounds = 0
        while not self.stopping.wait(self.POLL_SECONDS):
            rounds += 1
            processes.read(rescan=rounds % self.RESCAN_EVERY == 0)
        self.poller_cpu = time.thread_time()

    @staticmethod
    def _children() -> float:
        # This process too: a single Python client runs in it.
        return sum(
            usage.ru_utime + usage.ru_stime
            for usage in (
                resource.getrusage(resource.RUSAGE_CHILDREN),
                resource.getrusage(resource.RUSAGE_SELF),
            )
        )

    def wall(self) -> float:
        return time.perf_counter() - self.started

    def per_request(self, requests: int) -> dict:
        if self.processes is None or self.thread is None or not requests:
            return {}
        wall = self.wall()
        self.stopping.set()
        self.thread.join()
        used = self.processes.used()
        used["clients"] = self._children() - self.children_before - self.poller_cpu
        return {
            "cpu_us_per_request": {
                name: round(seconds * 1e6 / requests) for name, seconds in used.items()
            },
            "cpu_busy_of_2": round(sum(used.values()) / wall, 2),
        }


WRK_SCRIPT = ROOT / "benchmarks" / "load" / "wrk_requests.lua"


def wrk_available() -> bool:
    """Whether the wrk load generator is installed (``make wrk``)."""
    return shutil.which("wrk") is not None


def wrk_load(
    *,
    port: int,
    path: str,
    headers: dict[str, str],
    bodies: list,
    clients: int,
    seconds: float,
    method: str = "POST",
    server: Server | None = None,
) -> dict:
    """The same load as ``http_load`` (``clients`` keep-alive connections, each sending its
    next request when the answer is read) from wrk: one C thread with an event loop and
    pre-formatted requests (benchmarks/load/wrk_requests.lua), so the load generator takes
    about a tenth of the CPU the Python clients take from the server on the same cores.
    Bounded in time only. For ``GET``, ``bodies`` are the paths to fetch."""
    with tempfile.NamedTemporaryFile("w", suffix=".requests", delete=False) as handle:
        for item in bodies:
            if method == "GET":
                handle.write(f"{item}\t\n")
            else:
                handle.write(f"{path}\t{json.dumps(item)}\n")
    command = ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "10s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command += ["-s", str(WRK_SCRIPT), f"http://127.0.0.1:{port}", "--", method, handle.name]
    cpu = _CpuMeter(server)
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        output = process.communicate()[0].decode()  # waits: its CPU joins RUSAGE_CHILDREN
    finally:
        os.unlink(handle.name)
    if process.returncode:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{output}")
    marker = "WRK_JSON "
    lines = [line for line in output.splitlines() if line.startswith(marker)]
    figures = json.loads(lines[0][len(marker) :]) if lines else None
    if figures is None:
        raise RuntimeError(f"wrk printed no figures:\n{output}")
    requests = figures["requests"]
    errors = sum(figures["errors"].values())
    return {
        "clients": clients,
        "generator": "wrk",
        "requests": requests,
        "errors": errors,
        "requests_per_s": round(requests / (figures["duration_us"] / 1e6), 1),
        "wall_s": round(cpu.wall(), 2),
        "n": requests,
        "median_ms": round(figures["median_us"] / 1000, 3),
        "p99_ms": round(figures["p99_us"] / 1000, 3),
        "mean_ms": round(figures["mean_us"] / 1000, 3),
        **cpu.per_request(requests),
    }
