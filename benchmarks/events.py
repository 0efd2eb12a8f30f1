"""Event ingestion and the timeline at scale.

* The worker alone, as deployed: events already in the sync log (ingested in-process, their
  processing not queued), then every batch queued at once to the real Celery worker
  (prefork, concurrency 2, started and warmed up beforehand, on a queue of its own). The
  rate is events / (first task queued .. last row processed); the REST side is excluded.
  Besides it, the CPU time per event of the worker processes and of their PostgreSQL
  backends.
* The rate of one process: the same batches processed in-process, one after the other, no
  broker (the cost per event of one process; the deployed worker runs two of them).
* End to end: load clients POST batches of 1,000 events to gunicorn, which writes the sync
  log and queues tasks on Redis; a Celery worker processes them into PostgreSQL. The rate is
  events / (first POST .. last event processed).
* The naive design side by side, on the same data in the same run, sampled: one resolver
  call, one activity insert and one transaction per event in-process; one queue task per
  event through Redis and the real worker. Their rates are extrapolated to the full count.
* The timeline's first page over HTTP for a customer with 10,000 activities.

Reproducible figures: before each timed repetition the tables the pipeline writes are
vacuumed and analysed (autovacuum may be off, and earlier runs leave dead rows), a warm-up
pass runs first (connections, caches, worker processes), and each figure is measured
``REPEATS`` times and reported as the median with its spread (min, max). ``--ladder`` runs
the suite at 100k, 300k and 1M profiles (a tenant each, ``identity.ladder_tenant``), for
the per-item cost table.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import random
import statistics
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from urllib.parse import urlsplit

from django.db import connection, transaction
from django.utils import timezone

from crm.celery import set_queue_override
from crm.devtools.worker import CeleryWorker
from crm.registry import ProcessedEvent, publish_events
from crm.services import api_key_create
from crm.tasks import tenant_task
from customers import ingest
from customers.events import event_type
from customers.handlers import apply_handlers, update_activity_metrics
from customers.identity import IdentityHints
from customers.ingest import BATCH_SIZE, Entry, Item, events_ingest, events_process
from customers.models import Activity, AliasKind, IdentityAlias, SyncLogEntry, SyncStatus
from customers.services import identity_resolve

from .harness import (
    API_SERVER,
    ROOT,
    ProcessCpu,
    Server,
    http_load,
    load_runs,
    postgres_backends,
    proc_stat,
    process_and_children,
    reaped_children_cpu_seconds,
    start_worker,
    wrk_available,
    wrk_load,
)
from .identity import _ensure_profiles, _sample, ladder_sizes, ladder_tenant

TARGETS = {
    "end_to_end_events_per_s": 8000.0,
    "worker_events_per_s": 15000.0,
    "timeline_first_page_p99_ms": 8.0,
}
REPEATS = 3
# The profile of the pipeline before the batch and validation work of issue 18, for the docs.
PROFILE_BEFORE = ROOT / "benchmarks" / "events_profile_before.json"
END_TO_END_EVENTS = 50_000  # per repetition; the worker alone gets a fifth of it
WORKER_CONCURRENCY = 2  # the deployed worker's processes (one per core), as end to end
# How often the deployed worker's measurement looks at the sync log: a pass takes about a
# second, so the poll must be fine-grained, and cheap (a few rows by primary key each time).
POLL_SECONDS = 0.01
NAIVE_SAMPLE = 10_000  # events per naive measurement (extrapolated to the full count)
# The tables the pipeline writes; vacuumed and analysed before each timed repetition.
TABLES = (
    "customers_customerprofile",
    "customers_identityalias",
    "customers_synclogentry",
    "customers_activity",
    "customers_consentrecord",
)
TIMELINE_ACTIVITIES = 10_000
# (type, weight, payload maker)
MIX = (
    ("teetime.round.completed", 30),
    ("teetime.booking.created", 20),
    ("teetime.booking.paid", 15),
    ("teetime.handicap.updated", 10),
    ("contactPreference.updated", 10),
    ("scl.member.updated", 5),
    ("teetime.competition.entered", 5),
    ("pos.purchase.completed", 5),  # not in the catalog: a generic activity
)


def _payload(type_: str, n: int, rng: random.Random, now) -> dict:
    if type_ == "teetime.round.completed":
        return {"roundId": f"R{n}", "holes": 18, "stablefordPoints": rng.randint(18, 42)}
    if type_ == "teetime.booking.created":
        return {"bookingId": f"B{n}", "teeTime": (now + timedelta(days=3)).isoformat()}
    if type_ == "teetime.booking.paid":
        return {"bookingId": f"B{n}", "amount": f"{rng.randint(150, 900)}.00", "currency": "ZAR"}
    if type_ == "teetime.handicap.updated":
        return {"handicapIndex": f"{rng.uniform(0, 36):.1f}"}
    if type_ == "contactPreference.updated":
        return {"emailOptIn": rng.random() < 0.8, "smsOptIn": rng.random() < 0.5}
    if type_ == "scl.member.updated":
        return {"membershipType": rng.choice(["Full", "Weekday", "Senior"])}
    if type_ == "teetime.competition.entered":
        return {"competitionId": f"C{n % 50}", "name": "Monthly Medal"}
    return {"sku": f"SKU{n % 300}", "total": rng.randint(50, 2000)}


def make_events(tenant, count: int, known: list[tuple[str, str]], seed: int) -> list[dict]:
    """``count`` events: 70% about known people (by email, phone or SCL id), 30% about new
    people who each appear twice; a mix of types."""
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:10]
    types = [t for t, _ in MIX]
    weights = [w for _, w in MIX]
    now = timezone.now()
    keys = {"email": "email", "phone": "phoneNumber", "scl_member": "sclMemberId"}
    events = []
    for n in range(count):
        if rng.random() < 0.7:
            kind, value = rng.choice(known)
            identity = {keys[kind]: value}
        else:
            identity = {"email": f"new-{run}-{rng.randrange(int(count * 0.15))}@example.com"}
        type_ = rng.choices(types, weights)[0]
        events.append(
            {
                "id": f"{run}-{n}",
                "type": type_,
                "tenantId": tenant.slug,
                "timestamp": (now - timedelta(seconds=rng.randrange(86_400 * 20))).isoformat(),
                "identity": identity,
                "payload": _payload(type_, n, rng, now),
            }
        )
    return events


def _known(tenant, size: int) -> list[tuple[str, str]]:
    known = []
    for kind, share in (
        (AliasKind.EMAIL, 0.5),
        (AliasKind.PHONE, 0.3),
        (AliasKind.SCL_MEMBER, 0.2),
    ):
        known += [(str(kind), v) for v in _sample(tenant, kind, int(size * share))]
    return known


def _prepare(tables: Sequence[str] = TABLES) -> None:
    """The same starting state for every repetition: no dead rows from the previous one
    (autovacuum may be off), fresh planner statistics, dirty pages flushed (a checkpoint
    falling inside a timed pass, as after a bulk load, slowed it by a quarter). ``tables``:
    those the repetitions write."""
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {', '.join(tables)}")
        cursor.execute("CHECKPOINT")


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


def _ingest_quietly(tenant, events: list[dict]) -> list[int]:
    """Events into the sync log without queueing their processing (the caller processes)."""
    queue, ingest._queue = ingest._queue, lambda tenant, ids: None
    try:
        ids: list[int] = []
        for start in range(0, len(events), 1_000):
            ids += events_ingest(tenant=tenant, raw_events=events[start : start + 1_000]).entry_ids
    finally:
        ingest._queue = queue
    return ids


def _process_batches(tenant, ids: list[int]) -> int:
    processed = 0
    for start in range(0, len(ids), BATCH_SIZE):
        processed += events_process(
            tenant=tenant, entry_ids=ids[start : start + BATCH_SIZE]
        ).processed
    return processed


def _worker_rate(tenant, events: list[dict], log, *, tables: Sequence[str] = TABLES) -> dict:
    """One pass of one worker process over ``events``, in-process, no broker (the journeys
    suite compares it with and without journeys), prepared as every timed pass is
    (``_prepare``: ``tables``, those the pass writes)."""
    ids = _ingest_quietly(tenant, events)
    _prepare(tables)
    started = time.perf_counter()
    processed = _process_batches(tenant, ids)
    seconds = time.perf_counter() - started
    log(f"worker in-process: {processed:,} events in {seconds:.1f}s")
    return {
        "events": processed,
        "seconds": round(seconds, 2),
        "events_per_s": round(processed / seconds, 1),
        "batch_size": BATCH_SIZE,
    }


def _worker_rates(tenant, known, count: int, seed: int, log) -> dict:
    """The processing rate of one worker process, in-process, no broker: ``REPEATS`` runs
    of ``count`` fresh events each, after a warm-up pass."""
    _process_batches(tenant, _ingest_quietly(tenant, make_events(tenant, 2_000, known, seed)))
    rates, seconds_ = [], []
    for run in range(REPEATS):
        ids = _ingest_quietly(tenant, make_events(tenant, count, known, seed + 1 + run))
        _prepare()
        started = time.perf_counter()
        processed = _process_batches(tenant, ids)
        seconds = time.perf_counter() - started
        rates.append(processed / seconds)
        seconds_.append(seconds)
        log(f"worker in-process, run {run + 1}: {processed:,} events in {seconds:.1f}s")
    return {
        "events": count,
        "batch_size": BATCH_SIZE,
        "processes": 1,
        "events_per_s": spread(rates),
        "seconds": spread(seconds_),
        "us_per_event": round(1e6 / statistics.median(rates), 1),
    }


_PENDING_SQL = f"""
    SELECT id FROM "{SyncLogEntry._meta.db_table}"
    WHERE tenant_id = %s AND id = ANY(%s) AND {ingest.IS_PENDING}
"""  # noqa: S608  (by primary key, as the worker's own statements: see ``IS_PENDING``)


def _pending(tenant, ids: list[int]) -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(_PENDING_SQL, [tenant.pk, ids])
        return {pk for (pk,) in cursor.fetchall()}


def _wait_batches(tenant, batches: list[list[int]], timeout: float = 900) -> None:
    """Until no row of ``batches`` is pending, looking at few rows each time: a batch
    commits all its rows at once (those it defers stay pending and come back in a batch of
    their own), so only a batch whose first pending row is done is looked at in full."""
    remaining = [list(batch) for batch in batches if batch]
    deadline = time.monotonic() + timeout
    while remaining:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{sum(map(len, remaining)):,} events still pending")
        pending = _pending(tenant, [batch[0] for batch in remaining])
        moved = [batch for batch in remaining if batch[0] not in pending]
        if moved:
            still = _pending(tenant, [pk for batch in moved for pk in batch])
            remaining = [batch for batch in remaining if batch[0] in pending] + [
                left for batch in moved if (left := [pk for pk in batch if pk in still])
            ]
        if remaining:
            time.sleep(POLL_SECONDS)


class _WorkerCpu:
    """CPU time of a Celery worker (its main process and pool children) and of the
    PostgreSQL backends of ``database`` other than this process's own, from now on. A
    backend that connects during the pass counts from zero; one that exits during the pass
    is counted through the postmaster's reaped children (``postgres_exited``: any
    database's, so on a shared machine other work's exiting backends land there too)."""

    def __init__(self, worker: CeleryWorker, database: str) -> None:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            own_backend = cursor.fetchone()[0]
        # The postmaster is the parent of every backend (PostgreSQL on this machine).
        fields = proc_stat(own_backend)
        self.postmaster = int(fields[1]) if fields else None
        self.exited_before = self._exited()
        self.processes = ProcessCpu(
            {
                "worker": lambda: process_and_children(worker.process.pid),  # type: ignore[union-attr]
                "postgres": lambda: [p for p in postgres_backends(database) if p != own_backend],
            }
        )

    def _exited(self) -> float:
        return reaped_children_cpu_seconds(self.postmaster) if self.postmaster else 0.0

    def used(self) -> dict[str, float]:
        """CPU seconds used since the start, by the worker and by PostgreSQL."""
        used = self.processes.used()
        used["postgres_exited"] = max(0.0, self._exited() - self.exited_before)
        return used


def _worker_pass(tenant, ids: list[int], worker: CeleryWorker, database: str) -> dict:
    """One timed pass of the deployed worker: every batch of ``ids`` (already in the sync
    log, pending) queued at once on the worker's queue, from the first task queued until no
    row is pending; the CPU time of the worker and of its PostgreSQL backends meanwhile."""
    batches = [ids[start : start + BATCH_SIZE] for start in range(0, len(ids), BATCH_SIZE)]
    task = tenant_task("customers.process_events")
    cpu = _WorkerCpu(worker, database)
    load = os.getloadavg()[0]
    set_queue_override(worker.queue)
    try:
        started = time.perf_counter()
        for batch in batches:
            task.delay(str(tenant.pk), batch)
        _wait_batches(tenant, batches)
        seconds = time.perf_counter() - started
    finally:
        set_queue_override(None)
    used = cpu.used()
    processed = SyncLogEntry.objects.filter(
        tenant=tenant, pk__in=ids, status=SyncStatus.PROCESSED
    ).count()
    return {
        "events": processed,
        "batches": len(batches),
        "seconds": seconds,
        "cpu_us_per_event": {kind: round(1e6 * used[kind] / max(processed, 1), 1) for kind in used},
        "load_average": round(load, 2),
    }


def _deployed_worker_rates(tenant, known, count: int, seed: int, env: dict[str, str], log):
    """The worker alone as deployed: the real Celery worker (prefork, concurrency
    ``WORKER_CONCURRENCY``, on a queue of its own, started and warmed up with 2,000 events
    first), given ``count`` fresh events' batches at once, ``REPEATS`` times (see
    ``_worker_pass``). The events are in the sync log before the clock starts: the REST side
    (validation, the sync-log insert) is not in this figure; it is in the end to end one."""
    queue = f"bench-worker-{uuid.uuid4().hex[:8]}"
    database = urlsplit(env["DATABASE_URL"]).path.lstrip("/")
    worker = start_worker(env, queue, concurrency=WORKER_CONCURRENCY)
    runs = []
    try:
        worker.wait_ready()
        warm = _ingest_quietly(tenant, make_events(tenant, 2_000, known, seed))
        _worker_pass(tenant, warm, worker, database)
        for run in range(REPEATS):
            ids = _ingest_quietly(tenant, make_events(tenant, count, known, seed + 1 + run))
            _prepare()
            result = _worker_pass(tenant, ids, worker, database)
            runs.append(result)
            log(
                f"worker as deployed, run {run + 1}: {result['events']:,} events in "
                f"{result['seconds']:.2f}s; CPU per event {result['cpu_us_per_event']} us"
            )
    finally:
        worker.stop()
    rates = [r["events"] / r["seconds"] for r in runs]
    return {
        "events": count,
        "batch_size": BATCH_SIZE,
        "batches": runs[0]["batches"],
        "processes": WORKER_CONCURRENCY,
        "events_per_s": spread(rates),
        "seconds": spread([r["seconds"] for r in runs]),
        "us_per_event": round(1e6 / statistics.median(rates), 1),
        "cpu_us_per_event": {
            kind: round(statistics.median(r["cpu_us_per_event"][kind] for r in runs), 1)
            for kind in ("worker", "postgres", "postgres_exited")
        },
        "load_average": [r["load_average"] for r in runs],
    }


def _naive_apply(tenant, entry_id: int, now) -> None:
    """The naive design the guide sketches, for comparison only: one transaction per event,
    one resolver call, one ORM activity insert, the handlers and metrics for one item, one
    row update; the subscribers per event."""
    with transaction.atomic():
        # By id alone: a status filter here lets PostgreSQL walk every pending row.
        row = SyncLogEntry.objects.for_tenant(tenant).select_for_update().get(pk=entry_id)
        if row.status != SyncStatus.PENDING:
            return
        hints = IdentityHints(**row.identity)
        resolution = identity_resolve(tenant=tenant, hints=hints, source=f"event:{row.source}")
        spec = event_type(row.type)
        Activity.objects.create(
            tenant=tenant,
            customer=resolution.profile,
            type=row.type,
            category=spec.category,
            title=spec.title(row.payload)[:255],
            metadata=row.payload,
            source_service=row.source,
            source_id=ingest._source_id(row.payload),
            source_event_id=row.event_id,
            occurred_at=row.occurred_at,
        )
        entry = Entry(
            row.pk, row.source, row.event_id, row.type, row.occurred_at, row.identity, row.payload
        )
        item = Item(entry, hints, resolution.profile.pk, resolution.is_new, activity_new=True)
        apply_handlers(tenant, [item], now)
        update_activity_metrics(tenant, [item], now)
        row.status, row.profile_id, row.processed_at = SyncStatus.PROCESSED, item.profile_id, now
        row.save(update_fields=["status", "profile", "processed_at"])
    publish_events(
        tenant=tenant,
        events=[
            ProcessedEvent(
                event_id=row.event_id,
                type=row.type,
                source=row.source,
                occurred_at=row.occurred_at,
                payload=row.payload,
                profile_id=item.profile_id,
                is_new_profile=item.is_new_profile,
            )
        ],
    )


def _naive_worker_rate(tenant, known, sample: int, full: int, seed: int, log) -> dict:
    ids = _ingest_quietly(tenant, make_events(tenant, sample, known, seed))
    _prepare()
    now = timezone.now()
    started = time.perf_counter()
    for entry_id in ids:
        _naive_apply(tenant, entry_id, now)
    seconds = time.perf_counter() - started
    rate = len(ids) / seconds
    log(f"naive worker in-process: {len(ids):,} events in {seconds:.1f}s")
    return {
        "sampled_events": len(ids),
        "seconds": round(seconds, 2),
        "events_per_s": round(rate, 1),
        "extrapolated_events": full,
        "extrapolated_s": round(full / rate, 1),
    }


def _processed_since(tenant, since) -> int:
    return SyncLogEntry.objects.filter(
        tenant=tenant, status=SyncStatus.PROCESSED, created_at__gte=since
    ).count()


def _any_pending_since(tenant, since) -> bool:
    return (
        SyncLogEntry.objects.filter(tenant=tenant, status=SyncStatus.PENDING, created_at__gte=since)
        .order_by()
        .exists()
    )


def _wait_processed(tenant, since, timeout: float = 900) -> int:
    """Waits until none of the events written since ``since`` is pending (every POST has
    been answered, so they are all in the sync log), then counts the processed ones once.
    Each poll asks whether one pending row is left, which stops at the first it finds; a
    count of the pass's rows, by status, cost 30-40 ms of PostgreSQL's CPU per poll (the
    index keeps the entries of the rows' earlier versions until a vacuum), over a second of
    CPU per pass on the machine being measured."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _any_pending_since(tenant, since):
        time.sleep(0.25)
    return _processed_since(tenant, since)


def _post_and_drain(tenant, server, events: list[dict], headers: dict) -> dict:
    """One timed pass: POST ``events`` in requests of 1,000 from 2 clients; done when every
    event is processed. The bodies are encoded before the clock starts (a producer sends
    JSON it already has; the load clients' CPU is not the pipeline's)."""
    bodies = [
        json.dumps({"events": events[i : i + 1_000]}).encode() for i in range(0, len(events), 1_000)
    ]
    since = timezone.now()
    started = time.perf_counter()
    posted = http_load(
        port=server.port,
        path="/api/v1/events",
        headers=headers,
        bodies=bodies,
        clients=2,
        requests_per_client=max(1, len(bodies) // 2),
        seconds=600,
    )
    accepted_s = time.perf_counter() - started
    done = _wait_processed(tenant, since)
    seconds = time.perf_counter() - started
    return {
        "events": done,
        "seconds": seconds,
        "accepted_in_s": accepted_s,
        "posted": posted,
    }


def _naive_queued(tenant, known, queue: str, sample: int, full: int, seed: int, log) -> dict:
    """The naive queue design through the real worker: one task per event (the pipeline's
    own task with a batch of one: one alias query, one activity insert, one transaction)."""
    ids = _ingest_quietly(tenant, make_events(tenant, sample, known, seed))
    _prepare()
    task = tenant_task("customers.process_events")
    set_queue_override(queue)
    try:
        since_ids = set(ids)
        started = time.perf_counter()
        for entry_id in ids:
            task.delay(str(tenant.pk), [entry_id])
        deadline = time.monotonic() + 900
        done = 0
        while time.monotonic() < deadline:
            done = SyncLogEntry.objects.filter(
                tenant=tenant, pk__in=list(since_ids), status=SyncStatus.PROCESSED
            ).count()
            if done >= len(ids):
                break
            time.sleep(0.25)
        seconds = time.perf_counter() - started
    finally:
        set_queue_override(None)
    rate = done / seconds
    log(f"naive one task per event: {done:,} events in {seconds:.1f}s")
    return {
        "sampled_events": done,
        "seconds": round(seconds, 2),
        "events_per_s": round(rate, 1),
        "extrapolated_events": full,
        "extrapolated_s": round(full / rate, 1),
    }


def _end_to_end(
    tenant, known, count: int, seed: int, env: dict[str, str], key: str, naive: int, log
) -> tuple[dict, dict | None]:
    """``REPEATS`` timed passes through one server and one worker (started once, warmed up
    with 2,000 events); then, when ``naive``, the one-task-per-event sample on that worker."""
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
    server = Server(env, workers=2, extra={"CRM_TASK_QUEUE": queue})
    worker = start_worker(env, queue, concurrency=2)
    runs = []
    naive_result = None
    try:
        server.wait()
        worker.wait_ready()
        _post_and_drain(tenant, server, make_events(tenant, 2_000, known, seed), headers)
        for run in range(REPEATS):
            events = make_events(tenant, count, known, seed + 1 + run)
            _prepare()
            result = _post_and_drain(tenant, server, events, headers)
            runs.append(result)
            log(
                f"end to end, run {run + 1}: {result['events']:,} events in "
                f"{result['seconds']:.1f}s (posted in {result['accepted_in_s']:.1f}s)"
            )
        if naive:
            naive_result = _naive_queued(tenant, known, queue, naive, count, seed + 50, log)
    finally:
        worker.stop()
        server.stop()
    rates = [r["events"] / r["seconds"] for r in runs]
    return {
        "events": count,
        "events_per_s": spread(rates),
        "seconds": spread([r["seconds"] for r in runs]),
        "accepted_in_s": spread([r["accepted_in_s"] for r in runs]),
        "post_p99_ms": spread([r["posted"]["p99_ms"] for r in runs]),
        "requests": sum(r["posted"]["requests"] for r in runs),
        "http_errors": sum(r["posted"]["errors"] for r in runs),
        "us_per_event": round(1e6 / statistics.median(rates), 1),
        "gunicorn_workers": 2,
        "celery_concurrency": 2,
    }, naive_result


def _short(path: str) -> str:
    """A profiled file's path without the checkout, virtualenv or interpreter prefix."""
    for marker in ("site-packages/", f"{ROOT}/", "lib/python3.12/"):
        path = path.split(marker)[-1]
    return path


def _profile_row(key: tuple, value: tuple) -> dict:
    (path, _, func), (_, calls, own, cumulative, _) = key, value
    return {
        "function": f"{_short(path)}:{func}",
        "calls": calls,
        "own_s": round(own, 3),
        "cumulative_s": round(cumulative, 3),
    }


def _profile(tenant, known, count: int, seed: int) -> dict:
    """cProfile of one untimed pass of each side of the pipeline, in-process: validation
    and the sync-log insert (the REST endpoint's work), then the batched processing. The
    top functions by own time, and the share spent waiting for PostgreSQL."""
    events = make_events(tenant, count, known, seed)
    ids: list[int] = []
    passes = {
        "ingest": lambda: ids.extend(_ingest_quietly(tenant, events)),
        "worker": lambda: _process_batches(tenant, ids),
    }
    rows = {}
    for name, work in passes.items():
        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.runcall(work)
        wall = time.perf_counter() - started
        stats = pstats.Stats(profile)
        entries = stats.stats  # type: ignore[attr-defined]
        waiting = sum(
            cumtime
            for (path, _, func), (_, _, _, cumtime, _) in entries.items()
            if func == "wait" and path.endswith("psycopg/connection.py")
        )
        top = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)[:10]
        stages = sorted(
            (kv for kv in entries.items() if _short(kv[0][0]).startswith("customers/")),
            key=lambda kv: kv[1][3],
            reverse=True,
        )[:12]
        rows[name] = {
            "events": count,
            "seconds": round(wall, 2),
            "waiting_for_postgres_pct": round(100 * waiting / wall, 1),
            "top_own_time": [_profile_row(key, value) for key, value in top],
            "top_customers_cumulative": [_profile_row(key, value) for key, value in stages],
        }
    return rows


def _timeline_customer(tenant, log):
    profile = identity_resolve(
        tenant=tenant, hints=IdentityHints(email="timeline-bench@example.com")
    ).profile
    have = Activity.objects.for_tenant(tenant).filter(customer=profile).count()
    if have < TIMELINE_ACTIVITIES:
        log(f"adding {TIMELINE_ACTIVITIES - have:,} activities to one customer ...")
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO "{Activity._meta.db_table}"
                    (tenant_id, customer_id, type, category, title, metadata, source_service,
                     source_id, source_event_id, occurred_at, created_at, updated_at)
                SELECT %s, %s,
                       (ARRAY['teetime.round.completed', 'teetime.booking.paid',
                              'email.opened', 'scl.member.updated'])[1 + i %% 4],
                       (ARRAY['golf', 'commerce', 'marketing', 'membership'])[1 + i %% 4],
                       'Benchmark activity ' || i, '{{}}'::jsonb, 'bench', '',
                       'timeline-' || %s || '-' || i,
                       now() - (i || ' hours')::interval, now(), now()
                FROM generate_series(1, %s) AS i
                """,  # noqa: S608
                [tenant.pk, profile.pk, uuid.uuid4().hex[:8], TIMELINE_ACTIVITIES - have],
            )
            cursor.execute(f'ANALYZE "{Activity._meta.db_table}"')
    return profile


def _timeline(tenant, env: dict[str, str], key: str, quick: bool, log) -> dict:
    """The first page over HTTP, 1 client, ``REPEATS`` times, from the Python load client and,
    when it is installed, from wrk (``first_page_wrk``...), back to back in each repetition;
    the check reads wrk's figure when it ran."""
    profile = _timeline_customer(tenant, log)
    count = Activity.objects.for_tenant(tenant).filter(customer=profile).count()
    headers = {"Authorization": f"Api-Key {key}"}
    base = f"/api/v1/customers/{profile.pk}/timeline"
    server = Server(env, **API_SERVER)
    pages = (("first_page", base), ("first_page_commerce", f"{base}?category=commerce"))
    use_wrk = wrk_available()
    runs: dict[str, list[dict]] = {name: [] for name, _ in pages}
    runs.update({f"{name}_wrk": [] for name, _ in pages} if use_wrk else {})
    try:
        server.wait()
        load = dict(port=server.port, path=base, headers=headers, method="GET", clients=1)
        http_load(**load, bodies=[base], requests_per_client=100, seconds=10)  # warm-up
        for _ in range(REPEATS):
            for name, path in pages:
                runs[name].append(
                    http_load(
                        **load,
                        bodies=[path],
                        requests_per_client=300 if quick else 1000,
                        seconds=60,
                        server=server,
                    )
                )
                if use_wrk:
                    runs[f"{name}_wrk"].append(
                        wrk_load(**load, bodies=[path], seconds=3 if quick else 10, server=server)
                    )
    finally:
        server.stop()
    result: dict = {"activities": count, "server": server.config}
    for name, measured in runs.items():
        result[name] = load_runs(measured)
    result["load_generator"] = "wrk" if use_wrk else "python"
    log(f"timeline: {result}")
    return result


def timeline_check(timeline: dict) -> float:
    """The first page's p99 the target is read against: wrk's when it ran."""
    return timeline.get("first_page_wrk", timeline["first_page"])["p99_ms"]["median"]


def _rung(tenant, profiles: int, key: str, env, quick: bool, naive: bool, log) -> dict:
    """Every throughput figure at one data size (known people sampled across all of it)."""
    total = _ensure_profiles(tenant, profiles, log)
    _prepare()
    known = _known(tenant, 2_000 if quick else 30_000)
    count = 10_000 if quick else END_TO_END_EVENTS
    sample = 1_000 if quick else NAIVE_SAMPLE
    log(f"rung at {total:,} profiles")
    worker = _deployed_worker_rates(tenant, known, count // 5, 150, env, log)
    one_process = _worker_rates(tenant, known, count // 5, seed=100, log=log)
    naive_worker = (
        _naive_worker_rate(tenant, known, sample, count // 5, seed=200, log=log) if naive else None
    )
    end_to_end, naive_queued = _end_to_end(
        tenant, known, count, 300, env, key, sample if naive else 0, log
    )
    return {
        "profiles": total,
        "aliases": IdentityAlias.objects.for_tenant(tenant).count(),
        "worker": worker,
        "worker_in_process": one_process,
        "naive_worker_in_process": naive_worker,
        "end_to_end": end_to_end,
        "naive_one_task_per_event": naive_queued,
    }


def run(*, profiles: int, quick: bool, env: dict[str, str], log, ladder: bool = False) -> dict:
    load_before = os.getloadavg()[0]
    sizes = ladder_sizes(profiles, ladder)
    rungs = []
    for size in sizes:
        tenant = ladder_tenant(size, profiles)
        key = api_key_create(tenant=tenant, name="benchmark events").raw_key
        rungs.append(_rung(tenant, size, key, env, quick, naive=size == profiles, log=log))
    known = _known(tenant, 2_000 if quick else 30_000)
    profile = _profile(tenant, known, 1_000 if quick else 5_000, seed=400)
    top = rungs[-1]
    timeline = _timeline(tenant, env, key, quick, log)
    worker, one_process, e2e = top["worker"], top["worker_in_process"], top["end_to_end"]
    naive_worker, naive_queued = top["naive_worker_in_process"], top["naive_one_task_per_event"]
    return {
        "data": {
            "profiles": top["profiles"],
            "aliases": top["aliases"],
            "events_end_to_end": e2e["events"],
            "events_worker": worker["events"],
            "known_share": 0.7,
            "types": [t for t, _ in MIX],
            "repeats": REPEATS,
            # Other work on the machine (the figures are CPU-bound on 2 cores).
            "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        },
        "worker": worker,
        "worker_in_process": one_process,
        "end_to_end": e2e,
        "naive": {
            "worker_in_process": naive_worker,
            "one_task_per_event": naive_queued,
            # Like for like: one process in-process, batched vs naive.
            "worker_ratio": round(
                one_process["events_per_s"]["median"] / naive_worker["events_per_s"], 1
            ),
            # Like for like: queue and worker only (the events already in the sync log), the
            # real worker at concurrency 2, batches vs one task per event.
            "queued_worker_ratio": round(
                worker["events_per_s"]["median"] / naive_queued["events_per_s"], 1
            ),
            # End to end (the REST side included) against the naive queue and worker only.
            "end_to_end_ratio": round(
                e2e["events_per_s"]["median"] / naive_queued["events_per_s"], 1
            ),
        },
        "growth": [
            {
                "profiles": rung["profiles"],
                "worker_events_per_s": rung["worker"]["events_per_s"]["median"],
                "worker_us_per_event": rung["worker"]["us_per_event"],
                "worker_cpu_us_per_event": rung["worker"]["cpu_us_per_event"],
                "one_process_events_per_s": rung["worker_in_process"]["events_per_s"]["median"],
                "one_process_us_per_event": rung["worker_in_process"]["us_per_event"],
                "end_to_end_events_per_s": rung["end_to_end"]["events_per_s"]["median"],
                "end_to_end_us_per_event": rung["end_to_end"]["us_per_event"],
            }
            for rung in rungs
        ],
        "profile": profile,
        "profiles_compared": {"before": json.loads(PROFILE_BEFORE.read_text())},
        "timeline": timeline,
        "checks": {
            "end_to_end_events_per_s": e2e["events_per_s"]["median"],
            "worker_events_per_s": worker["events_per_s"]["median"],
            "timeline_first_page_p99_ms": timeline_check(timeline),
        },
        "targets": TARGETS,
    }
