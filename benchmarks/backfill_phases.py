"""The member path of one import, phase by phase, with the CPU of each side.

``python -m benchmarks.backfill_phases PATH SLUG [--dry-run] [--stmts]`` (Django settings and
``DATABASE_URL`` from the environment): creates the tenant ``SLUG`` (with the export's clubs)
unless it exists, imports the export at ``PATH`` with the phase timer and prints, as JSON,
member rows/s with exact keys (``benchmarks.backfill.MEMBER_PHASES``), and for every phase
its wall time, its PostgreSQL backend's CPU (``/proc/<pid>/stat``) and this process's and
its staging processes' CPU. ``--stmts`` also prints every statement over 0.08 s with its
backend CPU (a multi-statement string counts as one). Used for the back-to-back pairs of
docs/profiles/backfill-import.md (main's tree and a branch, each on its own database).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from .harness import process_cpu_seconds as _cpu


def _own_cpu() -> float:
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _main(argv: list[str]) -> int:
    import django

    django.setup()
    from django.db import connection

    from backfill.mca import Export
    from backfill.runs import run_import
    from crm.models import Tenant

    from .backfill import MEMBER_PHASES, _tenant

    path, slug = Path(argv[0]), argv[1]
    # An existing tenant is imported into again (the second import of a pair).
    tenant = Tenant.objects.filter(slug=slug).first() or _tenant(slug)
    connection.ensure_connection()
    backend = connection.connection.info.backend_pid
    state: dict[str, Any] = {"phase": "start", "t": time.monotonic(), "b": _cpu(backend),
                             "p": _own_cpu()}  # fmt: skip
    phases: dict[str, list[float]] = {}
    statements: list[tuple] = []

    def progress(phase: str, done: int, total: int | None) -> None:
        if phase != state["phase"]:
            now, cpu, own = time.monotonic(), _cpu(backend), _own_cpu()
            spent = phases.setdefault(state["phase"], [0.0, 0.0, 0.0])
            spent[0] += now - state["t"]
            spent[1] += cpu - state["b"]
            spent[2] += own - state["p"]
            state.update(phase=phase, t=now, b=cpu, p=own)

    def timed(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        began, cpu = time.monotonic(), _cpu(backend)
        try:
            return execute(sql, params, many, context)
        finally:
            wall = time.monotonic() - began
            if wall > 0.08:
                text = " ".join(sql.split())[:110]
                statements.append(
                    (round(wall, 2), round(_cpu(backend) - cpu, 2), state["phase"], text)
                )

    load = os.getloadavg()[0]
    with connection.execute_wrapper(timed):
        run = run_import(tenant=tenant, export=Export(path), region="ZA",
                         dry_run="--dry-run" in argv, progress=progress)  # fmt: skip
    phases.pop("completed", None)
    member = [sum(phases.get(p, [0.0, 0.0, 0.0])[i] for p in MEMBER_PHASES) for i in range(3)]
    rows = run.files["members"]["rows"]
    result = {
        "member_rows_per_s": round(rows / member[0]) if member[0] else 0,
        "member_path_s": {
            "wall": round(member[0], 2),
            "backend_cpu": round(member[1], 2),
            "python_cpu": round(member[2], 2),
        },
        "phases_wall_backend_python_s": {k: [round(x, 2) for x in v] for k, v in phases.items()},
        "member_outcomes": run.counters["member_outcomes"],
        "load_average": [round(load, 2), round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(result))
    if "--stmts" in argv:
        for statement in statements:
            print(*statement, sep="\t")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
