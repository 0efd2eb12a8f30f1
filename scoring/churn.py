"""Churn risk: 0-100, the sum of the points of the reasons that apply (capped at 100), each
reason stored with its code and facts, so staff see why a member is at risk.

Every feature is read as of ``as_of`` (the nightly run passes ``now``; the backtest a past
date): activities and interactions after it are ignored. The reasons and their points:

=====================  ======  ==========================================================
code                   points  applies when (windows end at ``as_of``)
=====================  ======  ==========================================================
ROUND_OVERDUE_LONG     35      >= 2 rounds in 365 days and the days since the last one are
                               at least 4x the member's own usual interval (and >= 28)
ROUND_OVERDUE          20      the same at 2x (and >= 14 days), below the long threshold
NO_RECENT_ROUNDS       15      a member (lifecycle MEMBER) with < 2 rounds in 365 days and
                               none in the last 90
ROUNDS_DECLINING       20      >= 2 rounds in the 90 days before the last 90, and at most
                               half as many in the last 90
RENEWAL_NEAR_INACTIVE  20      membership renews within 60 days (tenant's local date) and
                               no engagement activity in the last 30 days
COMPLAINED             15      a spam complaint about a message in the last 90 days
BOOKINGS_CANCELLED     10      >= 2 bookings cancelled in the last 90 days (a no-show
                               arrives as a cancellation: the catalog has no no-show event)
UNSUBSCRIBED           10      unsubscribed from a message in the last 90 days
HANDICAP_STALE         10      a handicap is known and was last updated > 180 days ago
=====================  ======  ==========================================================

The usual interval is the mean gap between the member's rounds in the last 365 days
((last - first) / (n - 1)). Weights are a first judgement, checked by the backtest (AUC and
top-decile lift, ``scoring.backtest``), not fitted.

One statement scores the tenant (``churn_score_tenant``): it upserts ``Score`` (with the
profile's current engagement and band) for every live profile, and a second one keeps
``CustomerProfile.churn_risk`` in step for the rule engine; a third drops the rows of
profiles that merged, were erased or deleted. No locks: a nightly view of the data.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection
from django.utils import timezone

from crm.models import Tenant
from customers.handlers import NOT_ENGAGEMENT_TYPES
from customers.models import LIVE_STATUSES, Activity, CustomerProfile, LifecycleStage
from marketing.models import Interaction, InteractionKind

from .engagement import BAND_FLOORS
from .models import Score

PROFILE = CustomerProfile._meta.db_table
ACTIVITY = Activity._meta.db_table
INTERACTION = Interaction._meta.db_table
SCORE = Score._meta.db_table

ROUND = "teetime.round.completed"
CANCELLED = "teetime.booking.cancelled"
HANDICAP = "teetime.handicap.updated"
RENEWAL_WINDOW_DAYS = 60
HANDICAP_STALE_DAYS = 180

# (code, points, condition, facts) in descending points: the order reasons are listed in.
# Conditions and facts read the columns of ``FEATURES_SQL``.
REASONS: tuple[tuple[str, int, str, str], ...] = (
    (
        "ROUND_OVERDUE_LONG",
        35,
        "f.rounds_365 >= 2 AND f.days_since_round >= greatest(4 * f.interval_days, 28)",
        "'days_since_round', f.days_since_round, 'usual_interval_days', round(f.interval_days)",
    ),
    (
        "ROUND_OVERDUE",
        20,
        "f.rounds_365 >= 2 AND f.days_since_round >= greatest(2 * f.interval_days, 14)"
        " AND f.days_since_round < greatest(4 * f.interval_days, 28)",
        "'days_since_round', f.days_since_round, 'usual_interval_days', round(f.interval_days)",
    ),
    (
        "ROUNDS_DECLINING",
        20,
        "f.rounds_prev_90 >= 2 AND 2 * f.rounds_90 <= f.rounds_prev_90",
        "'rounds_90', f.rounds_90, 'rounds_prev_90', f.rounds_prev_90",
    ),
    (
        "RENEWAL_NEAR_INACTIVE",
        20,
        "f.renewal_on >= %(local_date)s AND f.renewal_on <= %(renewal_until)s AND f.engaged_30 = 0",
        "'renewal_on', f.renewal_on",
    ),
    (
        "NO_RECENT_ROUNDS",
        15,
        f"f.lifecycle_stage = '{LifecycleStage.MEMBER}' AND f.rounds_365 < 2 AND f.rounds_90 = 0",
        "'rounds_365', f.rounds_365",
    ),
    ("COMPLAINED", 15, "f.complaints_90 > 0", "'complaints_90', f.complaints_90"),
    ("BOOKINGS_CANCELLED", 10, "f.cancelled_90 >= 2", "'cancelled_90', f.cancelled_90"),
    ("UNSUBSCRIBED", 10, "f.unsubscribes_90 > 0", "'unsubscribes_90', f.unsubscribes_90"),
    (
        "HANDICAP_STALE",
        10,
        "f.handicap_at IS NOT NULL"
        f" AND f.handicap_at <= %(as_of)s::timestamptz - interval '{HANDICAP_STALE_DAYS} days'",
        "'handicap_updated_on', f.handicap_at::date",
    ),
)
REASON_POINTS: dict[str, int] = {code: points for code, points, _, _ in REASONS}

# One pass over the tenant's activities of the last 365 days, one over its interactions of
# the last 90, joined to the live profiles.
FEATURES_SQL = f"""
    SELECT p.id, p.tenant_id, p.lifecycle_stage, p.membership_renewal_on AS renewal_on,
           p.engagement_score,
           COALESCE(a.rounds_365, 0) AS rounds_365,
           COALESCE(a.rounds_90, 0) AS rounds_90,
           COALESCE(a.rounds_prev_90, 0) AS rounds_prev_90,
           floor(extract(epoch FROM (%(as_of)s::timestamptz - a.last_round)) / 86400)::int
               AS days_since_round,
           CASE WHEN a.rounds_365 >= 2 THEN
               extract(epoch FROM (a.last_round - a.first_round)) / 86400 / (a.rounds_365 - 1)
           END AS interval_days,
           COALESCE(a.cancelled_90, 0) AS cancelled_90,
           COALESCE(a.engaged_30, 0) AS engaged_30,
           CASE WHEN a.handicap_at IS NOT NULL THEN a.handicap_at
                WHEN p.handicap_updated_at <= %(as_of)s::timestamptz THEN p.handicap_updated_at
           END AS handicap_at,
           COALESCE(i.unsubscribes_90, 0) AS unsubscribes_90,
           COALESCE(i.complaints_90, 0) AS complaints_90
    FROM "{PROFILE}" p
    LEFT JOIN (
        SELECT customer_id,
               count(*) FILTER (WHERE type = '{ROUND}') AS rounds_365,
               count(*) FILTER (WHERE type = '{ROUND}'
                   AND occurred_at > %(as_of)s::timestamptz - interval '90 days') AS rounds_90,
               count(*) FILTER (WHERE type = '{ROUND}'
                   AND occurred_at > %(as_of)s::timestamptz - interval '180 days'
                   AND occurred_at <= %(as_of)s::timestamptz - interval '90 days')
                   AS rounds_prev_90,
               max(occurred_at) FILTER (WHERE type = '{ROUND}') AS last_round,
               min(occurred_at) FILTER (WHERE type = '{ROUND}') AS first_round,
               count(*) FILTER (WHERE type = '{CANCELLED}'
                   AND occurred_at > %(as_of)s::timestamptz - interval '90 days') AS cancelled_90,
               count(*) FILTER (WHERE type <> ALL(%(not_engagement)s::text[])
                   AND occurred_at > %(as_of)s::timestamptz - interval '30 days') AS engaged_30,
               max(occurred_at) FILTER (WHERE type = '{HANDICAP}') AS handicap_at
        FROM "{ACTIVITY}"
        WHERE tenant_id = %(tenant)s
          AND occurred_at > %(as_of)s::timestamptz - interval '365 days'
          AND occurred_at <= %(as_of)s::timestamptz
        GROUP BY customer_id
    ) a ON a.customer_id = p.id
    LEFT JOIN (
        SELECT customer_id,
               count(*) FILTER (WHERE kind = '{InteractionKind.UNSUBSCRIBED}') AS unsubscribes_90,
               count(*) FILTER (WHERE kind = '{InteractionKind.COMPLAINED}') AS complaints_90
        FROM "{INTERACTION}"
        WHERE tenant_id = %(tenant)s
          AND kind IN ('{InteractionKind.UNSUBSCRIBED}', '{InteractionKind.COMPLAINED}')
          AND occurred_at > %(as_of)s::timestamptz - interval '90 days'
          AND occurred_at <= %(as_of)s::timestamptz
        GROUP BY customer_id
    ) i ON i.customer_id = p.id
    WHERE p.tenant_id = %(tenant)s AND p.status = ANY(%(live)s) AND p.deleted_at IS NULL
"""  # noqa: S608

_REASON_ITEMS = ", ".join(
    f"CASE WHEN {condition} THEN jsonb_build_object('code', '{code}', 'points', {points}, "
    f"{facts}) END"
    for code, points, condition, facts in REASONS
)
_POINTS = " + ".join(
    f"CASE WHEN {condition} THEN {points} ELSE 0 END" for _, points, condition, _ in REASONS
)
# Every live profile: id, churn risk, reasons (a JSON array), engagement score.
CHURN_SQL = f"""
    SELECT f.id, least(100, {_POINTS}) AS risk,
           to_jsonb(array_remove(ARRAY[{_REASON_ITEMS}], NULL)) AS reasons,
           f.engagement_score
    FROM ({FEATURES_SQL}) f
"""  # noqa: S608

_BAND = (
    "CASE "
    + " ".join(f"WHEN c.engagement >= {floor} THEN '{band}'" for floor, band in BAND_FLOORS)
    + " END"
)
UPSERT_SQL = f"""
    INSERT INTO "{SCORE}" (tenant_id, customer_id, engagement, band, churn_risk, reasons,
                           computed_at, created_at, updated_at)
    SELECT %(tenant)s, c.id, c.engagement, {_BAND}, c.risk, c.reasons,
           %(as_of)s, %(as_of)s, %(as_of)s
    FROM (SELECT s.id, s.risk, s.reasons, COALESCE(s.engagement_score, 0) AS engagement
          FROM ({CHURN_SQL}) s) c
    ON CONFLICT (tenant_id, customer_id) DO UPDATE SET
        engagement = EXCLUDED.engagement, band = EXCLUDED.band,
        churn_risk = EXCLUDED.churn_risk, reasons = EXCLUDED.reasons,
        computed_at = EXCLUDED.computed_at, updated_at = EXCLUDED.updated_at
"""  # noqa: S608
PROFILE_SQL = f"""
    UPDATE "{PROFILE}" p SET churn_risk = s.churn_risk, churn_scored_at = s.computed_at
    FROM "{SCORE}" s
    WHERE s.tenant_id = %(tenant)s AND s.computed_at = %(as_of)s
      AND p.id = s.customer_id AND p.tenant_id = %(tenant)s
"""  # noqa: S608
PRUNE_SQL = f"""
    DELETE FROM "{SCORE}" s USING "{PROFILE}" p
    WHERE s.tenant_id = %(tenant)s AND p.id = s.customer_id
      AND (p.status <> ALL(%(live)s) OR p.deleted_at IS NOT NULL)
"""  # noqa: S608


def churn_params(tenant: Tenant, as_of: datetime) -> dict[str, Any]:
    local_date = as_of.astimezone(ZoneInfo(tenant.timezone)).date()
    return {
        "tenant": tenant.pk,
        "as_of": as_of,
        "live": list(LIVE_STATUSES),
        "not_engagement": list(NOT_ENGAGEMENT_TYPES),
        "local_date": local_date,
        "renewal_until": local_date + timedelta(days=RENEWAL_WINDOW_DAYS),
    }


def churn_scores(*, tenant: Tenant, as_of: datetime) -> dict[Any, tuple[int, list[dict]]]:
    """Read-only: every live profile's churn risk and reasons as of ``as_of``."""
    with connection.cursor() as cursor:
        cursor.execute(CHURN_SQL, churn_params(tenant, as_of))
        # Django leaves jsonb undecoded on its raw cursors (JSONField decodes it itself).
        return {pk: (risk, json.loads(reasons)) for pk, risk, reasons, _ in cursor.fetchall()}


def churn_score_tenant(*, tenant: Tenant, now: datetime | None = None) -> int:
    """Scores churn for every live profile of the tenant at ``now``: ``Score`` rows (with
    the profile's engagement score, so run ``engagement_score_tenant`` first) and the
    profiles' ``churn_risk``. Returns the number of profiles scored."""
    now = now or timezone.now()
    params = churn_params(tenant, now)
    with connection.cursor() as cursor:
        cursor.execute(UPSERT_SQL, params)
        scored = cursor.rowcount
        cursor.execute(PROFILE_SQL, params)
        cursor.execute(PRUNE_SQL, params)
    return scored
