"""The MCA v1 backfill at scale: a generated ZA export of ``profiles`` member records (5
rounds and 3 transactions each: 1M / 5M / 3M by default) imported into an empty tenant.

Each import runs in its own process (``python -m benchmarks.backfill PATH SLUG``), which
prints its phase timings, counters and peak resident memory (``VmHWM``: the import's alone;
``ru_maxrss`` would start at the benchmark process's size, which fork and exec pass on). Steps:

1. the full import: member rows/s with exact keys (staging members + planning + loading the
   people; duplicate detection is its own figure, not in this rate), rounds/s,
   transactions/s, duplicate detection (s), total;
2. the same export again: nothing created or updated, no activity twice (its time);
3. a dry run of an export a quarter the size (peak memory at two sizes: flat, the files are
   streamed; a dry run stages and plans everything, only the load's SQL is skipped);
4. duplicate quality on the labelled set of ``benchmarks/backfill_duplicates.py``.

The suite empties its bench database's tenants first (``TRUNCATE crm_tenant,
backfill_importrow CASCADE``: the staged rows have no foreign-key constraint): the database
is the suite's own (``--database``).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from django.db import connection

from .harness import ROOT

TARGETS = {
    "member_rows_per_s": 20_000,
    "duplicate_detection_s": 300,
    "duplicate_precision_share": 0.95,
    "duplicate_recall_share": 0.90,
}
# "Member rows imported with exact keys": the identity path (staging the member rows,
# planning: grouping by shared keys and matching profiles, loading the people). Duplicate
# detection (no shared key) has its own figure and budget, so it is not in this one.
MEMBER_PHASES = ("staging members", "planning", "loading", "loading membership ends")


def _tenant(slug: str):
    from crm.models import Club, Tenant

    from .backfill_export import CLUBS

    tenant = Tenant.objects.create(
        slug=slug, name=f"Backfill {slug}", region="ZA", timezone="Africa/Johannesburg",
        default_phone_region="ZA", currency="ZAR",
    )  # fmt: skip
    for code in CLUBS:
        Club.objects.create(tenant=tenant, name=code, timezone="Africa/Johannesburg")
    return tenant


def _import(env: dict[str, str], path: Path, slug: str, *, dry_run: bool = False) -> dict:
    """One import in a fresh process; returns what it printed (JSON on the last line)."""
    command = [sys.executable, "-m", "benchmarks.backfill", str(path), slug]
    if dry_run:
        command.append("--dry-run")
    done = subprocess.run(
        command, cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "crm.settings.base"},
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-5000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _activity_count() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM customers_activity")
        return cursor.fetchone()[0]


def _rate(rows: int, seconds: dict[str, float], phases: tuple[str, ...]) -> float:
    spent = sum(seconds.get(p, 0.0) for p in phases)
    return round(rows / spent) if spent else 0.0


def run(*, profiles: int, quick: bool, env: dict[str, str], log) -> dict:
    # Imported here: ``python -m benchmarks.backfill`` loads this module before Django.
    from .backfill_duplicates import measure
    from .backfill_export import za_export

    load_before = os.getloadavg()[0]
    members = min(profiles, 20_000) if quick else profiles
    small = max(members // 4, 1000)
    log(f"exports of {small:,} and {members:,} member records (generated once, then cached)")
    small_path, path = za_export(small), za_export(members)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE crm_tenant, backfill_importrow CASCADE")
    stamp = time.strftime("%H%M%S")
    _tenant(f"bf-small-{stamp}")
    _tenant(f"bf-{stamp}")

    log(f"import of {members:,} member records")
    first = _import(env, path, f"bf-{stamp}")
    log(f"  {first['seconds_total']} s, peak {first['peak_rss_mib']} MiB: {first['phases']}")
    log("the same export again")
    activities = _activity_count()
    again = _import(env, path, f"bf-{stamp}")
    again["activities_added"] = _activity_count() - activities
    log(f"  {again['seconds_total']} s: {again['counters']['member_outcomes']}")
    log(f"dry run of {small:,} member records (peak memory at the smaller size)")
    dry = _import(env, small_path, f"bf-small-{stamp}", dry_run=True)
    log(f"  {dry['seconds_total']} s, peak {dry['peak_rss_mib']} MiB")
    log("duplicate quality on the labelled set")
    quality = measure(people=2_000 if quick else 20_000, slug=f"bf-quality-{stamp}")

    seconds, rows = first["phases"], first["rows"]
    checks = {
        "member_rows_per_s": _rate(rows["members"], seconds, MEMBER_PHASES),
        "duplicate_detection_s": seconds.get("duplicates", 0.0),
        "duplicate_precision_share": quality["precision"],
        "duplicate_recall_share": quality["recall"],
    }
    return {
        "checks": checks,
        "targets": TARGETS,
        "data": {
            "members": rows["members"],
            "rounds": rows["rounds"],
            "transactions": rows["transactions"],
            "region": "ZA",
        },
        "first_import": {
            **first,
            "rounds_per_s": _rate(rows["rounds"], seconds, ("staging rounds", "loading rounds")),
            "transactions_per_s": _rate(
                rows["transactions"], seconds, ("staging transactions", "loading transactions")
            ),
            "member_phases": list(MEMBER_PHASES),
        },
        "second_import": again,
        "dry_run_small": {**dry, "members": dry["rows"]["members"]},
        "quality": quality,
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
    }


def _own_peak_kib() -> int:
    """This process's peak resident memory since it started (``VmHWM``, Linux). Not
    ``ru_maxrss``: Linux keeps it across fork and exec, so a process started by a larger one
    reports at least the parent's size at the fork (on 2026-12-07 the figure was the
    benchmark process's 252.9 MiB at both sizes, the import's own being 164 MiB)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _main(argv: list[str]) -> int:
    """``python -m benchmarks.backfill PATH SLUG [--dry-run]``: import, print JSON."""
    import django

    django.setup()
    from backfill.mca import Export
    from backfill.runs import run_import
    from crm.models import Tenant

    path, slug = Path(argv[0]), argv[1]
    tenant = Tenant.objects.get(slug=slug)
    phases: dict[str, float] = {}
    state = {"phase": "start", "since": time.monotonic()}

    def progress(phase: str, done: int, total: int | None) -> None:
        if phase != state["phase"]:
            now = time.monotonic()
            phases[state["phase"]] = round(phases.get(state["phase"], 0) + now - state["since"], 2)
            state.update(phase=phase, since=now)
            print(f"{time.strftime('%H:%M:%S')} {phase}", file=sys.stderr, flush=True)

    started = time.monotonic()
    export = Export(path)
    run = run_import(
        tenant=tenant, export=export, region="ZA", dry_run="--dry-run" in argv, progress=progress
    )
    export.close()
    total = time.monotonic() - started
    phases.pop("completed", None)
    peak_kib = _own_peak_kib()
    # The staging processes (forked, reaped when staging ends): the largest one's peak.
    child_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(
        json.dumps(
            {
                "seconds_total": round(total, 1),
                "phases": phases,
                "rows": {kind: info["rows"] for kind, info in run.files.items()},
                "counters": {
                    "member_outcomes": run.counters["member_outcomes"],
                    "files": run.counters["files"],
                    "reconciled": run.counters["reconciled"],
                },
                "peak_rss_mib": round(peak_kib / 1024, 1),
                "staging_process_peak_rss_mib": round(child_kib / 1024, 1),
                "pid": os.getpid(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
