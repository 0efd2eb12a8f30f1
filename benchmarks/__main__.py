"""`python -m benchmarks [--profiles N] [--quick] [--output-dir DIR]` (or `make bench`)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from .harness import BENCH_DATABASE, ROOT, bench_database_url, machine, migrate

SUITES = ("identity", "events", "segments", "campaigns", "journeys", "scoring", "backfill")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke runs)")
    parser.add_argument("--output-dir", default=str(ROOT / "docs"))
    parser.add_argument("--suite", choices=SUITES, action="append")
    parser.add_argument("--database", default=BENCH_DATABASE, help="bench database name")
    parser.add_argument(
        "--fresh", action="store_true", help="drop the bench database first (smoke runs)"
    )
    args = parser.parse_args(argv)
    if not os.environ.get("DATABASE_URL"):
        print("DATABASE_URL is not set: run through `make bench`.", file=sys.stderr)
        return 2

    env = {
        **os.environ,
        "DATABASE_URL": bench_database_url(os.environ["DATABASE_URL"], args.database, args.fresh),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    migrate(env)
    os.environ.update(DATABASE_URL=env["DATABASE_URL"], DJANGO_SETTINGS_MODULE="crm.settings.base")
    import django

    django.setup()
    from django.db import connection

    from . import backfill, campaigns, events, identity, journeys, report, scoring, segments

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = f"PostgreSQL {cursor.fetchone()[0].split()[0]}"
    meta = {
        **machine(),
        "postgres": postgres,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    for suite in args.suite or SUITES:
        log(f"suite {suite} at {args.profiles:,} profiles")
        results = {
            "identity": identity.run,
            "events": events.run,
            "segments": segments.run,
            "campaigns": campaigns.run,
            "journeys": journeys.run,
            "scoring": scoring.run,
            "backfill": backfill.run,
        }[suite](profiles=args.profiles, quick=args.quick, env=env, log=log)
        path = report.write(Path(args.output_dir), suite, results, meta)
        log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
