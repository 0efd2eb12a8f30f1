"""Writes a tenant's current scores: engagement (``engagement``) and churn risk with its
reasons (``churn``), for every live profile, in ONE statement that writes only what changed.

The statement (``WRITE_SQL``):

1. ``scored``: every live profile joined once to one aggregate per source (its activities of
   the last 365 days, its interactions of the last 90, its messages of the last 30 with
   their opens and clicks, grouped by customer with hash aggregates), the engagement score
   and churn risk computed from them, and left-joined to its current ``Score`` row. The
   activity aggregate also recounts the rolling 30-day engagement count (the same count as
   ``customers.handlers.activity_count_recompute``), and frequency reads that count, so the
   recount is chained before the scores in the same pass;
2. the ``Score`` rows that are new or whose values changed are upserted (``computed_at`` is
   the run that computed the values: unchanged since);
3. the profile's ``activity_count_30d``, ``engagement_score`` and ``churn_risk`` (the rule
   engine reads them) are updated where they differ (``IS DISTINCT FROM``), each
   ``*_scored_at`` set when its score changed; segments on these fields show the changes
   as entries and exits at their next refresh;
4. the rows of profiles that merged, were erased or deleted are deleted.

A night where nothing changed writes nothing: a profile row rewritten is a new version of a
wide row in a dozen indexes, which was most of the cost when every row was rewritten
(docs/scoring.md, "Cost"). Every row the upsert sees is locked even when its WHERE is
false, so unchanged rows are filtered out before it, not by it.

No locks beyond the rows written: the statement reads one snapshot; an event batch changing
a metric meanwhile is seen by the next run (scores are a nightly view, not a ledger).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction

from crm.models import Tenant
from customers.models import CustomerProfile

from .churn import POINTS_SQL, REASONS_SQL, churn_params, features_sql
from .engagement import BAND_FLOORS, DEPTH_JOIN, engagement_params, engagement_sql
from .models import Score

PROFILE = CustomerProfile._meta.db_table
SCORE = Score._meta.db_table
# The hash aggregates group up to a million customers; with the default 4 MB they spill to
# disk. SET LOCAL lasts until the transaction ends (safe behind PgBouncer's transaction
# pooling, where a plain SET would leak to the next client of the server connection).
WORK_MEM = "256MB"

_BAND = (
    "CASE "
    + " ".join(f"WHEN c.engagement >= {floor} THEN '{band}'" for floor, band in BAND_FLOORS)
    + " END"
)
# The engagement score reads the 30-day count just recounted in the activity aggregate.
_COLUMNS = (
    ", p.churn_risk, p.activity_count_30d, "
    f"{engagement_sql(count='COALESCE(a.engaged_30, 0)')} AS engagement"
)
# Every live profile: its new scores and the values the profile holds now. ``OFFSET 0``
# keeps each subquery a subquery: flattened, every use of a feature or score would repeat
# its whole expression (the reasons' CASEs alone use each feature several times).
_SCORED_SQL = f"""
    SELECT c.id, c.engagement, {_BAND} AS band, c.risk, c.reasons, c.engaged_30,
           c.engagement_score AS profile_engagement, c.churn_risk AS profile_churn,
           c.activity_count_30d AS profile_count
    FROM (
        SELECT f.id, f.engagement, f.engagement_score, f.churn_risk, f.engaged_30,
               f.activity_count_30d, {POINTS_SQL} AS risk, {REASONS_SQL} AS reasons
        FROM ({features_sql(columns=_COLUMNS, joins=DEPTH_JOIN)} OFFSET 0) f
        OFFSET 0
    ) c
    OFFSET 0
"""  # noqa: S608

# Rows to change are picked by primary key (``= ANY(ARRAY(...))``, an index scan) rather
# than joined: the planner cannot know how few of the million rows changed and would scan
# the whole table to join them.
WRITE_SQL = f"""
    WITH scored AS MATERIALIZED (
        SELECT x.*, s.id AS score_id,
               (s.engagement, s.band, s.churn_risk, s.reasons)
                   IS DISTINCT FROM (x.engagement, x.band, x.risk, x.reasons) AS score_changed,
               (x.profile_engagement, x.profile_churn, x.profile_count)
                   IS DISTINCT FROM (x.engagement, x.risk, x.engaged_30) AS profile_changed
        FROM ({_SCORED_SQL}) x
        LEFT JOIN "{SCORE}" s ON s.tenant_id = %(tenant)s AND s.customer_id = x.id
    ), updated AS (
        UPDATE "{SCORE}" s SET
            engagement = x.engagement, band = x.band, churn_risk = x.risk,
            reasons = x.reasons, computed_at = %(now)s, updated_at = %(now)s
        FROM scored x
        WHERE s.id = ANY(ARRAY(SELECT score_id FROM scored
                               WHERE score_id IS NOT NULL AND score_changed))
          AND x.score_id = s.id
        RETURNING 1
    ), inserted AS (
        INSERT INTO "{SCORE}" (tenant_id, customer_id, engagement, band, churn_risk, reasons,
                               computed_at, created_at, updated_at)
        SELECT %(tenant)s, id, engagement, band, risk, reasons, %(now)s, %(now)s, %(now)s
        FROM scored WHERE score_id IS NULL
        ON CONFLICT (tenant_id, customer_id) DO UPDATE SET
            engagement = EXCLUDED.engagement, band = EXCLUDED.band,
            churn_risk = EXCLUDED.churn_risk, reasons = EXCLUDED.reasons,
            computed_at = EXCLUDED.computed_at, updated_at = EXCLUDED.updated_at
        RETURNING 1
    ), profiles AS (
        UPDATE "{PROFILE}" p SET
            activity_count_30d = x.engaged_30,
            engagement_score = x.engagement,
            engagement_scored_at = CASE WHEN p.engagement_score IS DISTINCT FROM x.engagement
                                        THEN %(now)s ELSE p.engagement_scored_at END,
            churn_risk = x.risk,
            churn_scored_at = CASE WHEN p.churn_risk IS DISTINCT FROM x.risk
                                   THEN %(now)s ELSE p.churn_scored_at END
        FROM scored x
        WHERE p.id = ANY(ARRAY(SELECT id FROM scored WHERE profile_changed))
          AND p.tenant_id = %(tenant)s AND x.id = p.id
        RETURNING 1
    ), pruned AS (
        DELETE FROM "{SCORE}" s USING "{PROFILE}" p
        WHERE s.tenant_id = %(tenant)s AND p.id = s.customer_id AND p.tenant_id = %(tenant)s
          AND (p.status <> ALL(%(live)s) OR p.deleted_at IS NOT NULL)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM scored),
           (SELECT count(*) FROM updated) + (SELECT count(*) FROM inserted),
           (SELECT count(*) FROM profiles), (SELECT count(*) FROM pruned)
"""  # noqa: S608


def work_mem_raise() -> None:
    """For the rest of the current transaction (call inside one): memory for the hash
    aggregates, and no JIT (compiling the score expressions cost more than it saved)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
        cursor.execute("SET LOCAL jit = off")


@dataclass(frozen=True)
class ScoresWritten:
    scored: int  # live profiles scored
    changed: int  # Score rows inserted or updated
    profiles_changed: int  # profiles whose engagement_score or churn_risk changed
    pruned: int  # Score rows of profiles no longer live, deleted


def write_params(tenant: Tenant, now: datetime) -> dict:
    return {**engagement_params(tenant, now), **churn_params(tenant, now)}


def scores_write(*, tenant: Tenant, now: datetime) -> ScoresWritten:
    """Scores every live profile of the tenant at ``now`` and writes what changed (steps in
    the module docstring), the 30-day activity counts included."""
    with transaction.atomic(), connection.cursor() as cursor:
        work_mem_raise()
        cursor.execute(WRITE_SQL, write_params(tenant, now))
        return ScoresWritten(*cursor.fetchone())
