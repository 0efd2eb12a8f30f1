"""Journeys at scale.

* Ingestion with journeys: the events suite's in-process worker rate (``events._worker_rate``)
  measured in the same run without journeys and with 5 ACTIVE event-triggered journeys
  (each on one of the event types of the mix; WAIT a day, then END), so the subscriber
  (``automation.triggers.journeys_on_events``) enrolls people in every batch; in
  alternating chunks of a quarter of the events each, after a warm-up pass; each chunk is
  prepared as the events suite's timed passes are (``events._prepare``: VACUUM ANALYZE,
  CHECKPOINT), so a checkpoint of the bulk-loaded profiles does not fall inside one.
* The wait sweep: 100,000 enrollments at a WAIT step that ended a minute ago (written
  set-wise), advanced by ``automation.engine.journeys_advance`` to the next WAIT;
  ``SWEEP_REPEATS`` times (a new journey each), reported as the median and spread.
* Analytics: ``automation.analytics.journey_analytics`` of a journey with 1M history rows
  (written set-wise with INSERT ... SELECT generate_series), repeated calls.

Every journey made here is archived at the end, so later runs do not feed events into them,
and dropped with its enrollments and history at the start of the next run, so the database
(its own, ``crm_bench_journeys``, unless ``--database`` names one) does not grow run by run.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from automation import triggers
from automation.analytics import journey_analytics
from automation.engine import journeys_advance
from automation.journeys import (
    journey_activate,
    journey_archive,
    journey_create,
    journey_pause,
    journey_resume,
)
from automation.models import Enrollment, EnrollmentStep, Journey, StepStat
from automation.stats import step_stats_rebuild
from crm.models import Region
from crm.services import tenant_create
from customers.models import CustomerProfile

from .events import TABLES, _known, _prepare, _worker_rate, make_events
from .harness import spread, summary_ms
from .identity import _ensure_profiles

TARGETS = {
    "ingestion_with_journeys_share": 0.8,
    "wait_sweep_transitions_per_s": 10_000.0,
    "analytics_p99_ms": 200.0,
}
INGESTION_CHUNKS = 4
# One sweep of 100,000 takes about 10 s; two runs of the same commit have differed by 8%.
SWEEP_REPEATS = 3
TRIGGER_TYPES = (
    "teetime.round.completed",
    "teetime.booking.created",
    "teetime.booking.paid",
    "teetime.handicap.updated",
    "teetime.competition.entered",
)
E = Enrollment._meta.db_table
ES = EnrollmentStep._meta.db_table
S = StepStat._meta.db_table
P = CustomerProfile._meta.db_table
WAIT_STEPS = [
    {"key": "wait", "type": "WAIT", "config": {"duration": {"days": 1}}, "next": ["later"]},
    {"key": "later", "type": "WAIT", "config": {"duration": {"days": 1}}, "next": ["end"]},
    {"key": "end", "type": "END"},
]


def _journey(tenant, name: str, trigger: dict) -> Journey:
    created = journey_create(
        tenant=tenant,
        data={"name": f"bench {name} {uuid.uuid4().hex[:8]}", "trigger": trigger},
        steps=WAIT_STEPS,
    )
    return journey_activate(journey=created)


def _drop_bench_journeys(tenant, log) -> None:
    """The journeys of earlier runs go, with their enrollments and history (some 1.4M rows a
    run): left in place they would make every run's database bigger and its ingestion
    slower. When every journey of the database is a bench journey (its own database), the
    tables are truncated: a table emptied by ``DELETE`` and vacuumed keeps its pages and
    is planned as empty while the run fills it again (foreign-key checks and anti-joins
    turn into sequential scans), a truncated one is sized from its pages as it grows."""
    journeys = Journey.objects.filter(tenant=tenant, name__startswith="bench ")
    ids = list(journeys.values_list("pk", flat=True))
    if not ids:
        return
    started = time.perf_counter()
    with connection.cursor() as cursor:
        if not Journey.objects.exclude(pk__in=ids).exists():
            cursor.execute(f'TRUNCATE "{ES}", "{S}", "{E}"')
        else:
            cursor.execute(
                f'DELETE FROM "{ES}" es USING "{E}" e WHERE es.tenant_id = %s '  # noqa: S608
                "AND e.id = es.enrollment_id AND e.journey_id = ANY(%s)",
                [tenant.pk, ids],
            )
            for table in (E, S):
                cursor.execute(
                    f'DELETE FROM "{table}" WHERE tenant_id = %s '  # noqa: S608
                    "AND journey_id = ANY(%s)",
                    [tenant.pk, ids],
                )
    journeys.delete()
    log(f"dropped {len(ids)} journeys of earlier runs in {time.perf_counter() - started:.0f}s")


def _set_active(journeys: list[Journey], active: bool) -> list[Journey]:
    change = journey_resume if active else journey_pause
    return [change(journey=journey) for journey in journeys]


def _ingestion(tenant, known, events_total: int, log) -> dict:
    """The two rates in alternating chunks (without, with, with, without, ...; the journeys
    paused in between), so a change of the machine's load during the run (other work on a
    shared machine) weighs on both alike."""
    # The kick (one task pushed to the broker per batch that enrolled someone) is left out,
    # as the events suite leaves out the queueing of its batches: no worker runs here.
    kicks = []
    kick, triggers.journeys_kick = triggers.journeys_kick, kicks.append
    plain = make_events(tenant, events_total, known, seed=11)
    triggering = make_events(tenant, events_total, known, seed=12)
    size = events_total // INGESTION_CHUNKS
    rates: dict[bool, list[dict]] = {False: [], True: []}
    journeys = [
        _journey(tenant, f"ingest {t}", {"type": "event", "event_type": t, "conditions": []})
        for t in TRIGGER_TYPES
    ]
    try:
        journeys = _set_active(journeys, False)
        # Warm-up (the worker's caches and connection, the tables' hot pages), untimed.
        _worker_rate(tenant, make_events(tenant, 2_000, known, seed=10), log)
        for chunk in range(INGESTION_CHUNKS):
            for active in (False, True) if chunk % 2 == 0 else (True, False):
                events = (triggering if active else plain)[chunk * size : (chunk + 1) * size]
                journeys = _set_active(journeys, active) if active else journeys
                rates[active].append(_worker_rate(tenant, events, log, tables=(*TABLES, E, ES)))
                journeys = _set_active(journeys, False) if active else journeys
        enrolled = Enrollment.objects.filter(
            tenant=tenant, journey__in=[j.pk for j in journeys]
        ).count()
    finally:
        triggers.journeys_kick = kick
        for journey in journeys:
            journey_archive(journey=journey)
    without, with_journeys = _sum_rates(rates[False]), _sum_rates(rates[True])
    share = with_journeys["events_per_s"] / without["events_per_s"]
    log(f"ingestion: {share:.0%} of the rate without journeys; {enrolled:,} enrolled")
    return {
        "without_journeys": without,
        "with_journeys": with_journeys,
        "journeys": len(TRIGGER_TYPES),
        "chunks": INGESTION_CHUNKS,
        "enrolled": enrolled,
        "share": round(share, 3),
    }


def _sum_rates(rates: list[dict]) -> dict:
    events, seconds = sum(r["events"] for r in rates), sum(r["seconds"] for r in rates)
    return {
        "events": events,
        "seconds": round(seconds, 2),
        "events_per_s": round(events / seconds, 1),
        "batch_size": rates[0]["batch_size"],
    }


def _enroll_setwise(tenant, journey: Journey, count: int, statuses_sql: str, now) -> int:
    """``count`` enrollments of distinct people (the first ``count`` profiles), written with
    INSERT ... SELECT: at the WAIT step, due a minute ago, with their first history row."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH people AS (
                SELECT id, row_number() OVER () AS n FROM "{P}"
                WHERE tenant_id = %(tenant)s AND status IN ('ACTIVE', 'INACTIVE')
                  AND deleted_at IS NULL
                LIMIT %(count)s
            ), ins AS (
                INSERT INTO "{E}" (tenant_id, journey_id, version_id, customer_id, step_key,
                                   visit, step_entered_at, status, due_at, wait_until,
                                   trigger_key, holdout, attempts, error, exit_reason,
                                   entered_at, ended_at, created_at, updated_at)
                SELECT %(tenant)s, %(journey)s, %(version)s, id, 'wait', 1,
                       %(entered)s, {statuses_sql}, %(due)s, %(due)s, NULL, n %% 10 = 0, 0, '',
                       '', %(entered)s, NULL, %(now)s, %(now)s
                FROM people
                RETURNING id, tenant_id
            )
            INSERT INTO "{ES}" (tenant_id, enrollment_id, visit, step_key, entered_at, outcome,
                                created_at, updated_at)
            SELECT tenant_id, id, 1, 'wait', %(entered)s, '', %(now)s, %(now)s FROM ins
            """,  # noqa: S608
            {
                "tenant": tenant.pk,
                "journey": journey.pk,
                "version": journey.current_version_id,
                "count": count,
                "entered": now - timedelta(days=1, minutes=1),
                "due": now - timedelta(minutes=1),
                "now": now,
            },
        )
        return cursor.rowcount


def _wait_sweep(tenant, count: int, log) -> dict:
    journey = _journey(tenant, "sweep", {"type": "manual"})
    try:
        now = timezone.now()
        written = _enroll_setwise(tenant, journey, count, "'ACTIVE'", now)
        _prepare((E, ES))  # the previous runs' dead rows gone, the enrollments flushed
        started = time.perf_counter()
        advanced = journeys_advance(tenant=tenant, now=now)
        seconds = time.perf_counter() - started
        at_next = Enrollment.objects.filter(
            tenant=tenant, journey=journey, step_key="later", status="ACTIVE"
        ).count()
    finally:
        journey_archive(journey=journey)
    log(f"wait sweep: {advanced:,} advanced in {seconds:.2f}s ({at_next:,} at the next step)")
    return {
        "enrollments": written,
        "advanced": advanced,
        "at_next_step": at_next,
        "seconds": round(seconds, 2),
        "transitions_per_s": round(advanced / seconds, 1),
    }


def _wait_sweeps(tenant, count: int, repeats: int, log) -> dict:
    """The wait sweep ``repeats`` times: the median run's figures, every run's rate and
    their spread."""
    runs = [_wait_sweep(tenant, count, log) for _ in range(repeats)]
    rates = spread([run["transitions_per_s"] for run in runs])
    median = min(runs, key=lambda run: abs(run["transitions_per_s"] - rates["median"]))
    return {**median, "transitions_per_s": rates["median"], "rates": rates}


_HISTORY_SQL = f"""
    WITH people AS (
        SELECT id, row_number() OVER () AS n FROM "{P}"
        WHERE tenant_id = %(tenant)s AND status IN ('ACTIVE', 'INACTIVE') AND deleted_at IS NULL
        LIMIT %(enrollments)s
    ), ins AS (
        INSERT INTO "{E}" (tenant_id, journey_id, version_id, customer_id, step_key, visit,
                           step_entered_at, status, due_at, wait_until, trigger_key, holdout,
                           attempts, error, exit_reason, entered_at, ended_at, created_at,
                           updated_at)
        SELECT %(tenant)s, %(journey)s, %(version)s, id,
               CASE WHEN n %% 10 = 9 THEN 'later' ELSE 'end' END, %(visits)s,
               %(now)s::timestamptz - (n %% 30) * interval '1 day',
               (ARRAY['COMPLETED', 'COMPLETED', 'COMPLETED', 'COMPLETED', 'COMPLETED',
                      'CONVERTED', 'CONVERTED', 'EXITED', 'FAILED', 'ACTIVE'])[1 + n %% 10],
               NULL, NULL, NULL, n %% 10 = 3, 0, '',
               CASE WHEN n %% 10 = 7 THEN 'exit_criteria' ELSE '' END,
               %(now)s::timestamptz - (30 + n %% 60) * interval '1 day',
               CASE WHEN n %% 10 = 9 THEN NULL
                    ELSE %(now)s::timestamptz - (n %% 30) * interval '1 day' END,
               %(now)s, %(now)s
        FROM people
        RETURNING id, tenant_id, entered_at
    )
    INSERT INTO "{ES}" (tenant_id, enrollment_id, visit, step_key, entered_at, left_at,
                        outcome, created_at, updated_at)
    SELECT ins.tenant_id, ins.id, v,
           (ARRAY['wait', 'later', 'end', 'end'])[least(v, 4)],
           ins.entered_at + (v - 1) * interval '1 day',
           ins.entered_at + v * interval '1 day',
           CASE WHEN v < 3 THEN 'waited' ELSE '' END, %(now)s, %(now)s
    FROM ins, generate_series(1, %(visits)s) AS v
"""  # noqa: S608


def _analytics(tenant, history_rows: int, calls: int, log) -> dict:
    journey = _journey(tenant, "analytics", {"type": "manual"})
    visits = 4
    try:
        now = timezone.now()
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                _HISTORY_SQL,
                {
                    "tenant": tenant.pk,
                    "journey": journey.pk,
                    "version": journey.current_version_id,
                    "enrollments": history_rows // visits,
                    "visits": visits,
                    "now": now,
                },
            )
            rows = cursor.rowcount
        log(f"analytics: {rows:,} history rows written in {time.perf_counter() - started:.0f}s")
        # Written straight into the tables, so their step figures are counted from them, as
        # the migration does for history written before the figures existed.
        started = time.perf_counter()
        step_stats_rebuild(journey=journey, now=now)
        rebuild = time.perf_counter() - started
        log(f"analytics: step figures recounted from the history in {rebuild:.1f}s")
        with connection.cursor() as cursor:
            cursor.execute(f'VACUUM ANALYZE "{E}", "{ES}", "{S}"')
        journey_analytics(journey=journey)  # warm-up
        timings: list[float] = []
        deadline = time.perf_counter() + 60  # bounded in count and time, as http_load is
        while len(timings) < calls and (len(timings) < 5 or time.perf_counter() < deadline):
            t0 = time.perf_counter()
            figures = journey_analytics(journey=journey)
            timings.append(time.perf_counter() - t0)
    finally:
        journey_archive(journey=journey)
    result = {
        "history_rows": rows,
        "entered": figures["entered"],
        "recount_s": round(rebuild, 1),
        **summary_ms(timings),
    }
    log(f"analytics: {result}")
    return result


def run(*, profiles: int, quick: bool, env: dict[str, str], log) -> dict:
    tenant, _ = tenant_create(slug="bench", name="Bench Golf Club", region=Region.ZA)
    total = _ensure_profiles(tenant, profiles, log)
    _drop_bench_journeys(tenant, log)
    with connection.cursor() as cursor:
        cursor.execute(
            # Not the journey tables: just emptied, they are planned from their size.
            "VACUUM ANALYZE customers_customerprofile, customers_identityalias, "
            "customers_synclogentry, customers_activity"
        )
    known = _known(tenant, 2_000 if quick else 30_000)
    ingestion = _ingestion(tenant, known, 2_000 if quick else 20_000, log)
    sweep = _wait_sweeps(
        tenant, min(total, 1_000 if quick else 100_000), 1 if quick else SWEEP_REPEATS, log
    )
    analytics = _analytics(
        tenant, min(total * 2, 4_000 if quick else 1_000_000), 20 if quick else 200, log
    )
    return {
        "data": {"profiles": total, "trigger_types": list(TRIGGER_TYPES)},
        "ingestion": ingestion,
        "wait_sweep": sweep,
        "analytics": analytics,
        "checks": {
            "ingestion_with_journeys_share": ingestion["share"],
            "wait_sweep_transitions_per_s": sweep["transitions_per_s"],
            "analytics_p99_ms": analytics["p99_ms"],
        },
        "targets": TARGETS,
    }
