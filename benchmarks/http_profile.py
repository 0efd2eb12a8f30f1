"""cProfile of API requests in-process (Django's test client: no gunicorn, no sockets), for the
"profile, then fix the biggest cost" record of the hot endpoints: function calls, CPU time and
SQL queries per request, and where the time goes."""

from __future__ import annotations

import cProfile
import json
import pstats
import time
from pathlib import Path

from django.db import connection
from django.test.utils import CaptureQueriesContext

from .harness import ROOT

# The same figures for the code before issue 18's HTTP work (measured with this module's
# method on the 1M bench data; kept for the side-by-side in docs/benchmarks.md).
PROFILE_BEFORE = ROOT / "benchmarks" / "http_profile_before.json"
OURS = ("crm/", "customers/", "rest_framework/", "django/core/handlers", "redis/", "psycopg/")


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/wt/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return path.split("/", 1)[1] if path.startswith("http2/") else path


def profile_requests(send, count: int) -> dict:
    """``send(i)`` makes request ``i``; warmed up, then counted, timed and profiled."""
    for i in range(50):
        send(i)
    with CaptureQueriesContext(connection) as queries:
        send(0)
    query_count = len(queries)  # now: the log is read lazily, and each request resets it
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(count):
        send(i)
    wall_us = (time.perf_counter() - started) * 1e6 / count
    cpu_us = (time.process_time() - cpu) * 1e6 / count
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(count):
        send(i)
    profiler.disable()
    stats = pstats.Stats(profiler)
    calls = sum(value[1] for value in stats.stats.values())  # type: ignore[attr-defined]
    rows = [
        {
            "function": f"{_short(key[0])}:{key[2]}",
            "own_ms_per_request": round(value[2] * 1000 / count, 3),
            "cumulative_ms_per_request": round(value[3] * 1000 / count, 3),
        }
        for key, value in stats.stats.items()  # type: ignore[attr-defined]
    ]
    top = sorted(rows, key=lambda r: r["own_ms_per_request"], reverse=True)[:8]
    return {
        "requests": count,
        "queries_per_request": query_count,
        "function_calls_per_request": round(calls / count),
        "cpu_us_per_request": round(cpu_us),
        "wall_us_per_request": round(wall_us),
        "top_own_time": top,
    }


def before() -> dict:
    return json.loads(Path(PROFILE_BEFORE).read_text())
