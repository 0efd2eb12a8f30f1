"""Where a segment refresh spends its time, at the bench database's size.

``python -m benchmarks.segments_profile --database crm_bench [--runs N] [--explain]``
(DATABASE_URL set, the segments suite's tenant ``bench`` grown first). With the segments
suite's rules and preparation (VACUUM ANALYZE, CHECKPOINT before each timed refresh) it
runs ``N`` times: a first refresh of a new segment, then a refresh after about 1% of the
people changed (incremental), and prints for each:

* the wall time, the CPU time of this process and of its PostgreSQL backend (CPU time,
  unlike the wall time, hardly moves when other work shares the machine), and the WAL
  written;
* each statement: its time and calls (round trips);
* what each table and index of the membership and history grew by (bytes, pages);
* with ``--explain``, EXPLAIN (ANALYZE, BUFFERS, WAL) of every statement of the last run's
  two refreshes, through auto_explain (needs a superuser).

The before and after profiles of docs/profiles/segments-refresh.md come from this script.
"""

from __future__ import annotations

import argparse
import time
import uuid

from .events_worker_profile import _auto_explain, _cpu, statement_timer


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.segments_profile")
    parser.add_argument("--database", default="crm_bench")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()

    from .harness import bench_setup

    bench_setup(args.database)
    from django.db import connection

    from crm.models import Tenant
    from marketing.models import Segment, SegmentChange, SegmentMembership
    from marketing.segments import segment_create, segment_refresh

    from . import segments as sg

    tenant = Tenant.objects.get(slug="bench")
    total = tenant and sg._ensure_profiles(tenant, 0, print)
    relations = _relations(connection, [SegmentMembership, SegmentChange])
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    # Leftovers of an interrupted run would make the first refresh not the first.
    for old in Segment.objects.for_tenant(tenant).filter(name__startswith="profile-"):
        sg._drop(old)

    for run in range(args.runs):
        explain = args.explain and run == args.runs - 1
        segment = segment_create(
            tenant=tenant,
            data={
                "name": f"profile-{uuid.uuid4().hex[:8]}",
                "criteria": sg.CRITERIA,
                "refresh_frequency": "MANUAL",
            },
        )
        try:
            sg._prepare()
            result = _measure(
                connection, backend, relations, explain, "first refresh", segment_refresh, segment
            )
            print(f"  members {result.members:,}, entered {result.entered:,}")
            changed = sg._change_one_percent(tenant, segment, total)
            sg._prepare()
            result = _measure(
                connection, backend, relations, explain, "1% refresh", segment_refresh, segment
            )
            print(
                f"  {changed:,} profiles changed; checked {result.checked:,}, "
                f"+{result.entered:,} -{result.left:,}, incremental {result.incremental}"
            )
        finally:
            sg._drop(segment)


def _relations(connection, models) -> list[str]:
    tables = [model._meta.db_table for model in models]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = ANY(%s::regclass[]) "
            "ORDER BY 1",
            [tables],
        )
        return tables + [row[0] for row in cursor.fetchall()]


def _sizes(connection, relations: list[str]) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT r, pg_relation_size(r::regclass) FROM unnest(%s::text[]) r", [relations]
        )
        return dict(cursor.fetchall())


def _measure(connection, backend, relations, explain, label, refresh, segment):
    statements, timed = statement_timer(120)

    notices: list[str] = []
    if explain:
        _auto_explain(connection, notices, on=True)
    sizes = _sizes(connection, relations)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()")
        wal_start = cursor.fetchone()[0]
    backend_start, own_start = _cpu(backend), time.process_time()
    with connection.execute_wrapper(timed):
        started = time.perf_counter()
        result = refresh(segment=segment)
        seconds = time.perf_counter() - started
    backend_cpu, own_cpu = _cpu(backend) - backend_start, time.process_time() - own_start
    if explain:
        _auto_explain(connection, notices, on=False)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn() - %s::pg_lsn", [wal_start])
        wal = float(cursor.fetchone()[0])
    grown = {
        name: size - sizes[name]
        for name, size in _sizes(connection, relations).items()
        if size != sizes[name]
    }
    print(
        f"{label}: {seconds:.3f} s; CPU: this process {own_cpu:.2f} s, PostgreSQL backend "
        f"{backend_cpu:.2f} s; WAL {wal / 1e6:,.1f} MB"
    )
    for sql, (calls, spent) in sorted(statements.items(), key=lambda kv: -kv[1][1]):
        print(f"  {1000 * spent:9.1f} ms {calls:3d}x  {sql}")
    for name, delta in grown.items():
        print(f"  grew {delta / 1e6:7.1f} MB ({delta // 8192:,} pages)  {name}")
    if notices:
        print("\n------------------------------------------------------------\n".join(notices))
    return result


if __name__ == "__main__":
    main()
