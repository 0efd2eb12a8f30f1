"""Journeys at scale.

* Ingestion with journeys: the events suite's in-process worker rate (``events._worker_rate``)
  measured twice in the same run, without journeys and with 5 ACTIVE event-triggered
  journeys (each on one of the event types of the mix; WAIT a day, then END), so the
  subscriber (``automation.triggers.journeys_on_events``) enrolls people in every batch.
* The wait sweep: 100,000 enrollments at a WAIT step that ended a minute ago (written
  set-wise), advanced by ``automation.engine.journeys_advance`` to the next WAIT.
* Analytics: ``automation.analytics.journey_analytics`` of a journey with 1M history rows
  (written set-wise with INSERT ... SELECT generate_series), repeated calls.

Every journey made here is archived at the end, so later runs of the other suites do not
feed events into them.
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
from automation.journeys import journey_activate, journey_archive, journey_create
from automation.models import Enrollment, EnrollmentStep, Journey, JourneyStatus
from crm.models import Region
from crm.services import tenant_create
from customers.models import CustomerProfile

from .events import _known, _worker_rate, make_events
from .harness import summary_ms
from .identity import _ensure_profiles

TARGETS = {
    "ingestion_with_journeys_share": 0.8,
    "wait_sweep_transitions_per_s": 10_000.0,
    "analytics_p99_ms": 200.0,
}
TRIGGER_TYPES = (
    "teetime.round.completed",
    "teetime.booking.created",
    "teetime.booking.paid",
    "teetime.handicap.updated",
    "teetime.competition.entered",
)
E = Enrollment._meta.db_table
ES = EnrollmentStep._meta.db_table
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


def _archive_leftovers(tenant) -> None:
    """Journeys a killed run left ACTIVE would slow the next runs' ingestion."""
    for journey in Journey.objects.for_tenant(tenant).filter(
        name__startswith="bench ", status__in=[JourneyStatus.ACTIVE, JourneyStatus.PAUSED]
    ):
        journey_archive(journey=journey)


def _ingestion(tenant, known, events_total: int, log) -> dict:
    # The kick (one task pushed to the broker per batch that enrolled someone) is left out,
    # as the events suite leaves out the queueing of its batches: no worker runs here.
    kicks = []
    kick, triggers.journeys_kick = triggers.journeys_kick, kicks.append
    try:
        without = _worker_rate(tenant, make_events(tenant, events_total, known, seed=11), log)
        journeys = [
            _journey(tenant, f"ingest {t}", {"type": "event", "event_type": t, "conditions": []})
            for t in TRIGGER_TYPES
        ]
        try:
            with_journeys = _worker_rate(
                tenant, make_events(tenant, events_total, known, seed=12), log
            )
            enrolled = Enrollment.objects.filter(
                tenant=tenant, journey__in=[j.pk for j in journeys]
            ).count()
        finally:
            for journey in journeys:
                journey_archive(journey=journey)
    finally:
        triggers.journeys_kick = kick
    share = with_journeys["events_per_s"] / without["events_per_s"]
    log(f"ingestion: {share:.0%} of the rate without journeys; {enrolled:,} enrolled")
    return {
        "without_journeys": without,
        "with_journeys": with_journeys,
        "journeys": len(TRIGGER_TYPES),
        "enrolled": enrolled,
        "share": round(share, 3),
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
        with connection.cursor() as cursor:
            cursor.execute(f'ANALYZE "{E}", "{ES}"')
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
            cursor.execute(f'VACUUM ANALYZE "{E}", "{ES}"')
        log(f"analytics: {rows:,} history rows written in {time.perf_counter() - started:.0f}s")
        journey_analytics(journey=journey)  # warm-up
        timings: list[float] = []
        deadline = time.perf_counter() + 60  # bounded in count and time, as http_load is
        while len(timings) < calls and (len(timings) < 5 or time.perf_counter() < deadline):
            t0 = time.perf_counter()
            figures = journey_analytics(journey=journey)
            timings.append(time.perf_counter() - t0)
    finally:
        journey_archive(journey=journey)
    result = {"history_rows": rows, "entered": figures["entered"], **summary_ms(timings)}
    log(f"analytics: {result}")
    return result


def run(*, profiles: int, quick: bool, env: dict[str, str], log) -> dict:
    tenant, _ = tenant_create(slug="bench", name="Bench Golf Club", region=Region.ZA)
    total = _ensure_profiles(tenant, profiles, log)
    _archive_leftovers(tenant)
    with connection.cursor() as cursor:
        cursor.execute(
            "VACUUM ANALYZE customers_customerprofile, customers_identityalias, "
            "customers_synclogentry, customers_activity, automation_enrollment, "
            "automation_enrollmentstep"
        )
    known = _known(tenant, 2_000 if quick else 30_000)
    ingestion = _ingestion(tenant, known, 2_000 if quick else 20_000, log)
    sweep = _wait_sweep(tenant, min(total, 1_000 if quick else 100_000), log)
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
