"""Scoring at scale.

* Nightly scoring of every profile of the bench tenant (``scoring.nightly.tenant_score``: the
  30-day activity recount, engagement and churn in one write; the day's aggregates), with at
  least 5 activities and 1 interaction per profile (written set-wise the first time:
  activities over the last 400 days, one sent message per profile in the last 30 days, opens
  and clicks on most of them). After VACUUM ANALYZE: one catch-up run at the current time
  (it writes whatever changed since the database was last scored: every profile on a fresh
  one), then ``NIGHTS`` consecutive nights (the clock one day later each time, no new
  events: windows and recency move, so some scores change). The figure is the median night.
  Each step is timed on the side.
* The analytics overview (``scoring.analytics.analytics_overview``), repeated calls.
* ``--ladder``: the nightly run also on tenants of 100k and 300k profiles (their own
  tenants, same history per profile, in the same database), for the cost per profile as the
  data grows; the naive design, the analytics and the backtest run at the full size only.
* The churn backtest (``scoring.backtest.backtest_run``) on the synthetic demo history
  (``scoring.demo.demo_history_generate``) of a separate small tenant: its AUC is recorded.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from crm.models import Region
from crm.services import tenant_create
from customers.handlers import NOT_ENGAGEMENT_TYPES
from customers.models import CHANNELS, Activity, CustomerProfile
from marketing.models import Interaction, InteractionKind, Message, MessageStatus
from scoring import nightly
from scoring.analytics import analytics_overview
from scoring.backtest import backtest_run
from scoring.demo import SOURCE as DEMO_SOURCE
from scoring.demo import demo_history_generate
from scoring.engagement import (
    BAND_FLOORS,
    DEPTH_WINDOW_DAYS,
    EngagementInputs,
    engagement_reference,
    monetary_thresholds_minor,
)
from scoring.models import RunKind, Score

from .harness import summary_ms
from .identity import _ensure_profiles, ladder_sizes

TARGETS = {
    "nightly_s": 60.0,
    "analytics_overview_p99_ms": 200.0,
}
STRETCH_NIGHTLY_S = 10.0
NIGHTS = 3
NAIVE_SAMPLE = 5_000
ACTIVITIES_PER_PROFILE = 5
P = CustomerProfile._meta.db_table
A = Activity._meta.db_table
M = Message._meta.db_table
I = Interaction._meta.db_table  # noqa: E741
SOURCE = "bench-scoring"
# Bench messages stand for journey sends (a message is a campaign run's or a journey step
# visit's); their step ids are far above any real history row's id.
FAKE_STEP_BASE = 10**15

_ACTIVITIES_SQL = f"""
    INSERT INTO "{A}" (tenant_id, customer_id, type, category, title, metadata, source_service,
                       source_id, source_event_id, occurred_at, created_at, updated_at)
    SELECT %(tenant)s, p.id, t.type, t.category, 'Benchmark activity', '{{}}'::jsonb,
           '{SOURCE}', '', 'act-' || p.id || '-' || g.n,
           %(now)s::timestamptz
               - (abs(hashtext(p.id::text || g.n)) %% (400 * 24)) * interval '1 hour',
           %(now)s, %(now)s
    FROM "{P}" p
    CROSS JOIN generate_series(1, {ACTIVITIES_PER_PROFILE}) AS g(n)
    JOIN (VALUES (0, 'teetime.round.completed', 'golf'),
                 (1, 'teetime.booking.created', 'golf'),
                 (2, 'teetime.booking.paid', 'commerce'),
                 (3, 'teetime.competition.entered', 'golf'),
                 (4, 'teetime.booking.cancelled', 'golf'),
                 (5, 'teetime.handicap.updated', 'golf'))
         AS t(k, type, category) ON t.k = abs(hashtext(p.id::text || 'type' || g.n)) %% 6
    WHERE p.tenant_id = %(tenant)s
    ON CONFLICT (tenant_id, source_service, source_event_id) DO NOTHING
"""  # noqa: S608

_MESSAGES_SQL = f"""
    WITH sent AS (
        INSERT INTO "{M}" (tenant_id, customer_id, journey_step_id, channel, address, variant,
                           status, skip_reason, attempts, error, provider_id, sent_at,
                           created_at, updated_at)
        SELECT %(tenant)s, p.id, {FAKE_STEP_BASE} + row_number() OVER (), 'email', '', '',
               'SENT', '', 1, '', '',
               %(now)s::timestamptz - (abs(hashtext(p.id::text)) %% (29 * 24)) * interval '1 hour',
               %(now)s, %(now)s
        FROM "{P}" p WHERE p.tenant_id = %(tenant)s
        RETURNING id, customer_id, sent_at
    )
    INSERT INTO "{I}" (tenant_id, message_id, customer_id, kind, source, event_id, occurred_at,
                       metadata, created_at, updated_at)
    SELECT %(tenant)s, s.id, s.customer_id, k.kind, 'bench', 'bench-' || s.id || '-' || k.kind,
           s.sent_at + interval '1 hour', '{{}}'::jsonb, %(now)s, %(now)s
    FROM sent s
    JOIN (VALUES ('OPENED', 8), ('CLICKED', 3)) AS k(kind, below) ON s.id %% 10 < k.below
"""  # noqa: S608


def _ensure_history(tenant, total: int, log) -> dict:
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{A}" WHERE tenant_id = %s', [tenant.pk])  # noqa: S608
        activities = cursor.fetchone()[0]
        if activities < ACTIVITIES_PER_PROFILE * total:
            log(f"writing {ACTIVITIES_PER_PROFILE} activities per profile (have {activities:,})")
            started = time.monotonic()
            cursor.execute(_ACTIVITIES_SQL, {"tenant": tenant.pk, "now": now})
            log(f"  {cursor.rowcount:,} in {time.monotonic() - started:.0f}s")
            cursor.execute(f'VACUUM ANALYZE "{A}"')
        cursor.execute(
            f'SELECT count(*) FROM "{M}" WHERE tenant_id = %s AND journey_step_id >= %s',  # noqa: S608
            [tenant.pk, FAKE_STEP_BASE],
        )
        if not cursor.fetchone()[0]:
            log("writing one sent message per profile, with opens and clicks ...")
            started = time.monotonic()
            cursor.execute(_MESSAGES_SQL, {"tenant": tenant.pk, "now": now})
            log(f"  {cursor.rowcount:,} interactions in {time.monotonic() - started:.0f}s")
            cursor.execute(f'VACUUM ANALYZE "{M}", "{I}"')
        counts = {}
        for name, table in (("activities", A), ("messages", M), ("interactions", I)):
            cursor.execute(f'SELECT count(*) FROM "{table}" WHERE tenant_id = %s', [tenant.pk])  # noqa: S608
            counts[name] = cursor.fetchone()[0]
    return counts


def _nightly(tenant, now, log) -> dict:
    """One MANUAL run at ``now`` (the nightly's steps, unclaimed), each step timed by a
    wrapper."""
    steps: dict[str, float] = {}
    written: dict[str, int] = {}

    def timed(name, fn):
        def wrapper(**kwargs):
            t0 = time.perf_counter()
            try:
                result = fn(**kwargs)
                if name == "scores_write":
                    written.update(asdict(result))
                return result
            finally:
                steps[name] = round(time.perf_counter() - t0, 2)

        return wrapper

    names = ("scores_write", "daily_stats_record")
    originals = {name: getattr(nightly, name) for name in names}
    for name, fn in originals.items():
        setattr(nightly, name, timed(name, fn))
    try:
        started = time.perf_counter()
        nightly.tenant_score(tenant=tenant, kind=RunKind.MANUAL, now=now)
        seconds = time.perf_counter() - started
    finally:
        for name, fn in originals.items():
            setattr(nightly, name, fn)
    log(f"nightly at {now:%Y-%m-%d %H:%M}: {seconds:.1f}s; steps {steps}; {written}")
    return {"seconds": round(seconds, 2), "steps_s": steps, **written}


def _nights(tenant, log) -> dict:
    """The catch-up run, then ``NIGHTS`` consecutive nights; median of the nights."""
    with connection.cursor() as cursor:
        for table in (P, A, M, I, Score._meta.db_table):
            cursor.execute(f'VACUUM ANALYZE "{table}"')
    now = timezone.now()
    catch_up = _nightly(tenant, now, log)
    nights = [_nightly(tenant, now + timedelta(days=n), log) for n in range(1, NIGHTS + 1)]
    return {
        "scored": catch_up["scored"],
        "catch_up": catch_up,
        "nights": nights,
        "seconds": statistics.median(night["seconds"] for night in nights),
    }


def _overview(tenant, calls: int) -> dict:
    analytics_overview(tenant=tenant)  # warm-up
    timings = []
    for _ in range(calls):
        t0 = time.perf_counter()
        analytics_overview(tenant=tenant)
        timings.append(time.perf_counter() - t0)
    return summary_ms(timings)


def _backtest(members: int, log) -> dict:
    demo, _ = tenant_create(slug="bench-demo", name="Bench Demo Club", region=Region.ZA)
    profiles = _ensure_profiles(demo, members, log)
    now = timezone.now()
    if not Activity.objects.for_tenant(demo).filter(source_service=DEMO_SOURCE).exists():
        rounds, lapses = demo_history_generate(tenant=demo, members=members, now=now)
        log(f"backtest demo history: {rounds:,} rounds, {lapses:,} lapses")
    horizon = 90
    started = time.perf_counter()
    result = backtest_run(
        tenant=demo, as_of=now - timedelta(days=horizon + 1), horizon_days=horizon, now=now
    )
    seconds = time.perf_counter() - started
    log(f"backtest: AUC {result.auc}, top-decile lift {result.top_decile_lift}")
    return {
        "profiles": profiles,
        "population": result.population,
        "churners": result.churners,
        "auc": None if result.auc is None else float(result.auc),
        "top_decile_lift": (
            None if result.top_decile_lift is None else float(result.top_decile_lift)
        ),
        "horizon_days": horizon,
        "seconds": round(seconds, 2),
    }


def _naive(tenant, now, sample: int, log) -> dict:
    """The guide's per-row design on a sample of profiles: for each, its inputs read by
    queries of its own, the engagement score computed in Python (the §10.1 reference the
    SQL is tested against) and its score row and profile saved one by one. Engagement only
    (churn would add more reads per row), so the ratio to the set-wise pass, which computes
    both, is a lower bound."""
    thresholds = monetary_thresholds_minor(tenant=tenant)
    window = now - timedelta(days=DEPTH_WINDOW_DAYS)
    ids = list(
        CustomerProfile.objects.for_tenant(tenant)
        .order_by("?")
        .values_list("id", flat=True)[:sample]
    )
    started = time.perf_counter()
    for customer_id in ids:
        with transaction.atomic():
            profile = CustomerProfile.objects.get(pk=customer_id)
            count = (
                Activity.objects.filter(
                    tenant=tenant, customer_id=customer_id, occurred_at__gt=window
                )
                .filter(occurred_at__lte=now)
                .exclude(type__in=NOT_ENGAGEMENT_TYPES)
                .count()
            )
            sent = Message.objects.filter(
                tenant=tenant,
                customer_id=customer_id,
                status=MessageStatus.SENT,
                sent_at__gt=window,
                sent_at__lte=now,
            )
            messages = list(sent.values_list("id", flat=True))
            kinds = Interaction.objects.filter(
                tenant=tenant, message_id__in=messages, occurred_at__gt=window
            ).filter(occurred_at__lte=now)
            opened = (
                kinds.filter(kind__in=[InteractionKind.OPENED, InteractionKind.CLICKED])
                .values("message_id")
                .distinct()
                .count()
            )
            clicked = kinds.filter(kind=InteractionKind.CLICKED).values("message_id").distinct()
            score = engagement_reference(
                EngagementInputs(
                    last_activity_at=profile.last_activity_at,
                    activity_count_30d=count,
                    lifetime_value_minor=profile.lifetime_value_minor,
                    channels_opted_in=sum(bool(getattr(profile, f"{c}_opt_in")) for c in CHANNELS),
                    sent=len(messages),
                    opened=opened,
                    clicked=clicked.count(),
                ),
                now=now,
                thresholds_minor=thresholds,
            )
            band = next(band for floor, band in BAND_FLOORS if score >= floor)
            Score.objects.update_or_create(
                tenant=tenant,
                customer_id=customer_id,
                defaults={"engagement": score, "band": band, "computed_at": now},
                create_defaults={
                    "engagement": score,
                    "band": band,
                    "churn_risk": profile.churn_risk or 0,
                    "computed_at": now,
                },
            )
            profile.activity_count_30d, profile.engagement_score = count, score
            profile.save(update_fields=["activity_count_30d", "engagement_score", "updated_at"])
    seconds = time.perf_counter() - started
    log(f"naive: {len(ids):,} profiles scored one by one in {seconds:.1f}s")
    return {"profiles": len(ids), "seconds": round(seconds, 2), "per_s": len(ids) / seconds}


def _rung(size: int, log) -> dict:
    """A smaller tenant of the ladder: its nights only (per-profile cost)."""
    slug = f"bench-{size // 1000}k"
    tenant, _ = tenant_create(slug=slug, name=f"Bench Golf Club {slug}", region=Region.ZA)
    total = _ensure_profiles(tenant, size, log)
    _ensure_history(tenant, total, log)
    return _growth_row(total, _nights(tenant, log))


def _growth_row(total: int, nightly_result: dict) -> dict:
    return {
        "profiles": total,
        "nightly_s": nightly_result["seconds"],
        "us_per_profile": round(1e6 * nightly_result["seconds"] / total, 1),
        "catch_up_s": nightly_result["catch_up"]["seconds"],
    }


def run(*, profiles: int, quick: bool, env: dict[str, str], log, ladder: bool = False) -> dict:
    load_before = os.getloadavg()[0]
    smaller = ladder_sizes(profiles, ladder)[:-1]
    growth = [_rung(size, log) for size in smaller]
    tenant, _ = tenant_create(slug="bench", name="Bench Golf Club", region=Region.ZA)
    total = _ensure_profiles(tenant, profiles, log)
    counts = _ensure_history(tenant, total, log)
    nightly_result = _nights(tenant, log)
    growth.append(_growth_row(total, nightly_result))
    naive = _naive(tenant, timezone.now(), 200 if quick else NAIVE_SAMPLE, log)
    batched_per_s = nightly_result["scored"] / nightly_result["seconds"]
    overview = _overview(tenant, 20 if quick else 500)
    log(f"analytics overview: {overview}")
    backtest = _backtest(1_000 if quick else 20_000, log)
    return {
        "data": {
            "profiles": total,
            **counts,
            "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        },
        "nightly": nightly_result,
        "naive": {
            "sample": naive["profiles"],
            "seconds": naive["seconds"],
            "profiles_per_s": round(naive["per_s"], 1),
            "extrapolated_s": round(nightly_result["scored"] / naive["per_s"], 1),
            "batched_profiles_per_s": round(batched_per_s, 1),
            "ratio": round(batched_per_s / naive["per_s"], 1),
        },
        "growth": growth,
        "analytics_overview": overview,
        "backtest": backtest,
        "stretch": {"nightly_s": STRETCH_NIGHTLY_S},
        "checks": {
            "nightly_s": nightly_result["seconds"],
            "analytics_overview_p99_ms": overview["p99_ms"],
        },
        "targets": TARGETS,
    }
