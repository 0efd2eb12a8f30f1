"""The HTTP hot paths of several code trees back to back, for a before/after pair:

    python -m benchmarks.http_ab --database NAME [--seconds 10] \
        LABEL=TREE[:WORKERS,THREADS[,CLASS]] ...

For each tree in turn (a checkout or ``git archive`` of a version, e.g. main and a branch), a
gunicorn of that tree's code (``API_SERVER``'s worker class unless the spec names one: a
tree from before crm/web_worker.py needs ``:2,4,gthread``) on the bench database, a 2 s
warm-up, then wrk for ``--seconds``: ``POST /api/v1/customers/resolve`` from 8 connections
and the timeline's first page from 1, with the CPU per request of the server, its PostgreSQL
backends and wrk
(``benchmarks.harness.wrk_load``). Run it under the bench lock; give each tree twice
(``main=... branch=... main=... branch=...``) to see the spread. Used in
docs/profiles/README.md ("The HTTP hot paths, third pass").
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from . import harness


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http_ab")
    parser.add_argument("--database", required=True)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("trees", nargs="+", help="LABEL=TREE[:WORKERS,THREADS[,CLASS]]")
    args = parser.parse_args(argv)
    env = harness.bench_setup(args.database)
    from crm.models import Region
    from crm.services import api_key_create, tenant_create
    from customers.models import AliasKind

    from .events import _timeline_customer
    from .identity import _sample

    tenant, _ = tenant_create(slug="bench", name="Bench Golf Club", region=Region.ZA)
    key = api_key_create(tenant=tenant, name="http a/b").raw_key
    emails = _sample(tenant, AliasKind.EMAIL, 3000)
    timeline = f"/api/v1/customers/{_timeline_customer(tenant, print).pk}/timeline"
    headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
    resolve = {
        "path": "/api/v1/customers/resolve",
        "headers": headers,
        "bodies": [{"email": email} for email in emails],
    }
    for spec in args.trees:
        label, _, rest = spec.partition("=")
        tree, _, shape = rest.partition(":")
        workers, threads, worker_class = _shape(shape)
        server = _server_of(Path(tree), env, workers, threads, worker_class)
        try:
            server.wait()
            harness.wrk_load(port=server.port, **resolve, clients=8, seconds=2)
            r = harness.wrk_load(
                port=server.port, **resolve, clients=8, seconds=args.seconds, server=server
            )
            t = harness.wrk_load(
                port=server.port,
                path=timeline,
                headers=headers,
                bodies=[timeline],
                clients=1,
                seconds=args.seconds,
                method="GET",
                server=server,
            )
        finally:
            server.stop()
        print(
            f"{label} {workers}x{threads} {worker_class} load {os.getloadavg()[0]:.1f}: resolve "
            f"{r['requests_per_s']}/s median {r['median_ms']} p99 {r['p99_ms']} ms errors "
            f"{r['errors']} cpu {r.get('cpu_us_per_request')} busy {r.get('cpu_busy_of_2')} | "
            f"timeline {t['requests_per_s']}/s median {t['median_ms']} p99 {t['p99_ms']} ms "
            f"cpu {t.get('cpu_us_per_request')}",
            flush=True,
        )
    return 0


def _shape(shape: str) -> tuple[int, int, str]:
    """``WORKERS,THREADS[,CLASS]`` (default: the benchmarks' ``API_SERVER``). A tree from
    before crm/web_worker.py needs ``CLASS`` ``gthread``."""
    parts = shape.split(",") if shape else []
    server = harness.API_SERVER
    workers = int(parts[0] if parts else server["workers"])
    threads = int(parts[1] if len(parts) > 1 else server["threads"])
    worker_class = str(parts[2] if len(parts) > 2 else server["worker_class"])
    return workers, threads, worker_class


def _server_of(
    tree: Path, env: dict[str, str], workers: int, threads: int, worker_class: str
) -> harness.Server:
    """The API's gunicorn, started in ``tree`` (so that tree's code serves)."""
    root = harness.ROOT
    harness.ROOT = tree  # Server starts gunicorn in harness.ROOT
    try:
        return harness.Server(
            env, workers=workers, worker_class=worker_class, threads=threads, keep_alive=5
        )
    finally:
        harness.ROOT = root


if __name__ == "__main__":
    raise SystemExit(main())
