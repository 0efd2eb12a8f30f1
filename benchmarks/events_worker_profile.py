"""Where a batch of the events worker spends its time, at the bench database's size.

``python -m benchmarks.events_worker_profile --database crm_bench_events [--events N]
[--cprofile] [--explain]`` (DATABASE_URL set, the events suite's tenant ``bench`` grown
first). After a warm-up of 2,000 events it ingests ``N`` events (the events suite's mix)
without queueing them, prepares the tables as the suite does (VACUUM ANALYZE, CHECKPOINT)
and processes them in batches in this process, printing:

* the rate, and the CPU time per event of this process and of its PostgreSQL backend
  (CPU time, unlike the wall time, hardly moves when other work shares the machine), and
  the WAL written per event;
* each statement of a batch: time per batch and calls per batch (round trips);
* with ``--cprofile``, the functions by own and by cumulative time;
* with ``--explain``, EXPLAIN (ANALYZE, BUFFERS, WAL) of every statement of one batch, nested
  ones (foreign-key checks) included, through auto_explain (needs a superuser).

The before and after profiles of issue 18 in ``docs/profiles/`` come from this script.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import pstats
import time


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.events_worker_profile")
    parser.add_argument("--database", default="crm_bench_events")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()

    from .harness import bench_setup, process_cpu_seconds

    bench_setup(args.database)
    from django.db import connection

    from crm.models import Tenant

    from . import events as ev

    tenant = Tenant.objects.get(slug="bench")
    known = ev._known(tenant, 30_000)
    ev._process_batches(tenant, ev._ingest_quietly(tenant, ev.make_events(tenant, 2_000, known, 1)))
    ids = ev._ingest_quietly(tenant, ev.make_events(tenant, args.events, known, 2))
    ev._prepare()
    if args.explain:
        _explain(connection, lambda: ev._process_batches(tenant, ids[: ev.BATCH_SIZE]))
        return

    statements, timed = statement_timer(110)

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), pg_current_wal_lsn()")
        backend, wal_start = cursor.fetchone()
    profile = cProfile.Profile() if args.cprofile else None
    backend_start, own_start = process_cpu_seconds(backend), time.process_time()
    with connection.execute_wrapper(timed):
        started = time.perf_counter()
        if profile:
            profile.enable()
        processed = ev._process_batches(tenant, ids)
        if profile:
            profile.disable()
        seconds = time.perf_counter() - started
    backend_cpu = process_cpu_seconds(backend) - backend_start
    own_cpu = time.process_time() - own_start
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn() - %s::pg_lsn", [wal_start])
        wal = float(cursor.fetchone()[0])
    batches = len(ids) / ev.BATCH_SIZE
    print(f"{processed:,} events in {seconds:.2f} s = {processed / seconds:,.0f} events/s")
    print(
        f"CPU per event: worker {1e6 * own_cpu / processed:.0f} us, PostgreSQL backend "
        f"{1e6 * backend_cpu / processed:.0f} us; WAL {wal / processed:,.0f} bytes per event"
    )
    total = sum(s for _, s in statements.values())
    print(
        f"{sum(c for c, _ in statements.values()) / batches:.1f} statements per batch of "
        f"{ev.BATCH_SIZE} (COPY, BEGIN and COMMIT not counted); {100 * total / seconds:.0f}% "
        "of the time in them"
    )
    for sql, (calls, spent) in sorted(statements.items(), key=lambda kv: -kv[1][1]):
        print(f"{1000 * spent / batches:8.1f} ms/batch {calls / batches:5.1f}x  {sql}")
    if profile:
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats(order).print_stats(25)
            print(out.getvalue())


def statement_timer(width: int):
    """A Django execute wrapper and what it counts: per statement (its first ``width``
    characters, whitespace collapsed), the calls and the seconds spent."""
    statements: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            entry = statements[" ".join(sql.split())[:width]]
            entry[0] += 1
            entry[1] += time.perf_counter() - started

    return statements, timed


def _explain(connection, work) -> None:
    notices: list[str] = []
    _auto_explain(connection, notices, on=True)
    work()
    _auto_explain(connection, notices, on=False)
    print("\n------------------------------------------------------------\n".join(notices))


def _auto_explain(connection, notices: list[str], *, on: bool) -> None:
    connection.ensure_connection()
    if on:
        connection.connection.add_notice_handler(lambda d: notices.append(d.message_primary))
    settings = {
        "auto_explain.log_min_duration": "0" if on else "-1",
        "auto_explain.log_analyze": "on",
        "auto_explain.log_buffers": "on",
        "auto_explain.log_wal": "on",
        "auto_explain.log_nested_statements": "on",
        "auto_explain.log_level": "notice",
        "client_min_messages": "notice",
    }
    with connection.cursor() as cursor:
        if on:
            cursor.execute("LOAD 'auto_explain'")
        for name, value in settings.items():
            cursor.execute("SELECT set_config(%s, %s, false)", [name, value])


if __name__ == "__main__":
    main()
