"""Event ingestion and the timeline at scale.

* The worker's own rate: events already in the sync log, processed in-process in batches.
* End to end: load clients POST batches of 1,000 events to gunicorn, which writes the sync
  log and queues tasks on Redis; a Celery worker processes them into PostgreSQL. The rate is
  events / (first POST .. last event processed).
* The timeline's first page over HTTP for a customer with 10,000 activities.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from crm.models import Region
from crm.services import api_key_create, tenant_create
from customers import ingest
from customers.identity import IdentityHints
from customers.ingest import BATCH_SIZE, events_ingest, events_process
from customers.models import Activity, AliasKind, IdentityAlias, SyncLogEntry, SyncStatus
from customers.services import identity_resolve

from .harness import Server, http_load, start_worker
from .identity import _ensure_profiles, _sample

TARGETS = {
    "end_to_end_events_per_s": 2000.0,
    "timeline_first_page_p99_ms": 20.0,
}
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


def _worker_rate(tenant, events: list[dict], log) -> dict:
    """The processing rate of one worker process, in-process, no broker."""
    queue, ingest._queue = ingest._queue, lambda tenant, ids: None
    try:
        ids: list[int] = []
        for start in range(0, len(events), 1_000):
            ids += events_ingest(tenant=tenant, raw_events=events[start : start + 1_000]).entry_ids
    finally:
        ingest._queue = queue
    started = time.perf_counter()
    processed = 0
    for start in range(0, len(ids), BATCH_SIZE):
        processed += events_process(
            tenant=tenant, entry_ids=ids[start : start + BATCH_SIZE]
        ).processed
    seconds = time.perf_counter() - started
    log(f"worker in-process: {processed:,} events in {seconds:.1f}s")
    return {
        "events": processed,
        "seconds": round(seconds, 2),
        "events_per_s": round(processed / seconds, 1),
        "batch_size": BATCH_SIZE,
    }


def _processed_since(tenant, since) -> int:
    return SyncLogEntry.objects.filter(
        tenant=tenant, status=SyncStatus.PROCESSED, created_at__gte=since
    ).count()


def _end_to_end(tenant, events: list[dict], env: dict[str, str], key: str, log) -> dict:
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
    bodies = [{"events": events[i : i + 1_000]} for i in range(0, len(events), 1_000)]
    server = Server(env, workers=2, extra={"CRM_TASK_QUEUE": queue})
    worker = start_worker(env, queue, concurrency=2)
    try:
        server.wait()
        worker.wait_ready()
        since = timezone.now()
        started = time.perf_counter()
        posted = http_load(
            port=server.port,
            path="/api/v1/events",
            headers=headers,
            bodies=bodies,
            clients=2,
            requests_per_client=len(bodies) // 2,
            seconds=600,
        )
        accepted_s = time.perf_counter() - started
        deadline = time.monotonic() + 900
        done = 0
        while time.monotonic() < deadline:
            done = _processed_since(tenant, since)
            if done >= len(events):
                break
            time.sleep(0.1)
        seconds = time.perf_counter() - started
    finally:
        worker.stop()
        server.stop()
    log(f"end to end: {done:,} events in {seconds:.1f}s (posted in {accepted_s:.1f}s)")
    return {
        "events": done,
        "requests": posted["requests"],
        "http_errors": posted["errors"],
        "post_p99_ms": posted["p99_ms"],
        "accepted_in_s": round(accepted_s, 2),
        "seconds": round(seconds, 2),
        "events_per_s": round(done / seconds, 1),
        "gunicorn_workers": 2,
        "celery_concurrency": 2,
    }


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
    profile = _timeline_customer(tenant, log)
    count = Activity.objects.for_tenant(tenant).filter(customer=profile).count()
    headers = {"Authorization": f"Api-Key {key}"}
    base = f"/api/v1/customers/{profile.pk}/timeline"
    server = Server(env, workers=4)
    try:
        server.wait()
        load = dict(port=server.port, path=base, headers=headers, method="GET", clients=1)
        http_load(**load, bodies=[base], requests_per_client=100, seconds=10)  # warm-up
        first = http_load(
            **load, bodies=[base], requests_per_client=300 if quick else 3000, seconds=60
        )
        filtered = http_load(
            **load,
            bodies=[f"{base}?category=commerce"],
            requests_per_client=300 if quick else 3000,
            seconds=60,
        )
    finally:
        server.stop()
    log(f"timeline: first page {first}, filtered {filtered}")
    return {"activities": count, "first_page": first, "first_page_commerce": filtered}


def run(*, profiles: int, quick: bool, env: dict[str, str], log) -> dict:
    tenant, _ = tenant_create(slug="bench", name="Bench Golf Club", region=Region.ZA)
    total = _ensure_profiles(tenant, profiles, log)
    # Runs before this one left dead rows; where autovacuum is off (as on these machines),
    # they would slow this run down. Measure from a vacuumed state.
    with connection.cursor() as cursor:
        cursor.execute(
            "VACUUM ANALYZE customers_customerprofile, customers_identityalias, "
            "customers_synclogentry, customers_activity"
        )
    events_total = 10_000 if quick else 100_000
    known = _known(tenant, 2_000 if quick else 30_000)
    log(f"{len(known):,} known identifiers sampled")
    key = api_key_create(tenant=tenant, name="benchmark events").raw_key

    worker = _worker_rate(tenant, make_events(tenant, events_total // 5, known, seed=1), log)
    end_to_end = _end_to_end(
        tenant, make_events(tenant, events_total, known, seed=2), env, key, log
    )
    timeline = _timeline(tenant, env, key, quick, log)
    return {
        "data": {
            "profiles": total,
            "aliases": IdentityAlias.objects.for_tenant(tenant).count(),
            "events_end_to_end": events_total,
            "known_share": 0.7,
            "types": [t for t, _ in MIX],
        },
        "worker_in_process": worker,
        "end_to_end": end_to_end,
        "timeline": timeline,
        "checks": {
            "end_to_end_events_per_s": end_to_end["events_per_s"],
            "timeline_first_page_p99_ms": timeline["first_page"]["p99_ms"],
        },
        "targets": TARGETS,
    }
