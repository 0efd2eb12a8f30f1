"""`python -m benchmarks [--profiles N] [--quick] [--ladder] [--output-dir DIR]`; `make bench`."""

from __future__ import annotations

import argparse
import inspect
import os
import subprocess
import sys
import time
from pathlib import Path

from .harness import BENCH_DATABASE, ROOT, bench_setup, run_meta

SUITES = ("identity", "events", "segments", "campaigns", "journeys", "scoring", "backfill")
# Suites whose data would bloat the shared bench database (and slow the other suites) get
# their own unless --database is given: journeys writes a million history rows per run, and
# scoring writes millions of activities and scores and measures whole-table passes that other
# suites' leftovers (dead rows, bloat) would slow down; backfill imports a generated export
# into an empty tenant.
SUITE_DATABASES = {
    "journeys": "crm_bench_journeys",
    "scoring": "crm_bench_scoring",
    "backfill": "crm_bench_backfill",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke runs)")
    parser.add_argument("--output-dir", default=str(ROOT / "docs"))
    parser.add_argument("--suite", choices=SUITES, action="append")
    parser.add_argument(
        "--database",
        help=f"bench database name (default {BENCH_DATABASE}; "
        + ", ".join(f"{s}: {d}" for s, d in SUITE_DATABASES.items())
        + ")",
    )
    parser.add_argument(
        "--ladder",
        action="store_true",
        help="suites that support it run at 100k, 300k and --profiles (growth per item)",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="drop the bench database first (smoke runs)"
    )
    args = parser.parse_args(argv)
    if not os.environ.get("DATABASE_URL"):
        print("DATABASE_URL is not set: run through `make bench`.", file=sys.stderr)
        return 2

    suites = args.suite or list(SUITES)
    if args.database is None:
        own = [s for s in suites if s in SUITE_DATABASES]
        for suite in own:  # each in a process of its own, on its own database
            own_database = ["--suite", suite, "--database", SUITE_DATABASES[suite]]
            code = subprocess.call(
                [sys.executable, "-m", "benchmarks", *_passed_on(args), *own_database]
            )
            if code:
                return code
        suites = [s for s in suites if s not in own]
        if not suites:
            return 0
        args.database = BENCH_DATABASE
    env = bench_setup(args.database, args.fresh)
    from . import backfill, campaigns, events, identity, journeys, report, scoring, segments

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    meta = run_meta()
    for suite in suites:
        log(f"suite {suite} at {args.profiles:,} profiles")
        suite_run = {
            "identity": identity.run,
            "events": events.run,
            "segments": segments.run,
            "campaigns": campaigns.run,
            "journeys": journeys.run,
            "scoring": scoring.run,
            "backfill": backfill.run,
        }[suite]
        ladder = (
            {"ladder": True}
            if args.ladder and "ladder" in inspect.signature(suite_run).parameters
            else {}
        )
        results = suite_run(profiles=args.profiles, quick=args.quick, env=env, log=log, **ladder)
        path = report.write(Path(args.output_dir), suite, results, meta)
        log(f"wrote {path}")
    return 0


def _passed_on(args: argparse.Namespace) -> list[str]:
    options = ["--profiles", str(args.profiles), "--output-dir", args.output_dir]
    return options + ["--quick"] * args.quick + ["--fresh"] * args.fresh


if __name__ == "__main__":
    sys.exit(main())
