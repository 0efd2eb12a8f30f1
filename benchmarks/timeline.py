"""The timeline figures of the events suite, measured on their own:
``python -m benchmarks.timeline --database NAME [--quick] [--output-dir DIR]``.

The events suite measures the timeline last, after half an hour of ingestion; this runs the
same measurement (``events._timeline``: the first page over HTTP for a customer with 10,000
activities, with and without a category filter, ``events.REPEATS`` times) on the bench
database as it is, and replaces only the timeline part of the events entry in
``docs/benchmarks.json`` (its figure, its check, its target), stamped with its own date.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from .harness import ROOT, bench_setup, run_meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.timeline")
    parser.add_argument("--database", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output-dir", default=str(ROOT / "docs"))
    args = parser.parse_args(argv)
    env = bench_setup(args.database)
    from crm.models import Region
    from crm.services import api_key_create, tenant_create

    from . import events, report

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    meta = run_meta()
    load_before = os.getloadavg()[0]
    tenant, _ = tenant_create(slug="bench", name="Bench Golf Club", region=Region.ZA)
    key = api_key_create(tenant=tenant, name="benchmark timeline").raw_key
    events._prepare()
    timeline = events._timeline(tenant, env, key, args.quick, log)
    timeline["recorded"] = {
        "date": meta["date"],
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "note": "measured on its own (python -m benchmarks.timeline), not in the events run",
    }
    output = Path(args.output_dir)
    raw_path = output / "benchmarks.json"
    raw = json.loads(raw_path.read_text())
    entry = raw["events"]
    entry["results"]["timeline"] = timeline
    entry["results"]["checks"]["timeline_first_page_p99_ms"] = events.timeline_check(timeline)
    entry["results"]["targets"]["timeline_first_page_p99_ms"] = events.TARGETS[
        "timeline_first_page_p99_ms"
    ]
    raw_path.write_text(json.dumps(raw, indent=2, sort_keys=True) + "\n")
    path = report.rerender(output)
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
