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

The nightly run writes churn risk together with engagement in one statement
(``scoring.scores``), from the same features (``features_sql``) and points (``POINTS_SQL``,
``REASONS_SQL``) as the read-only ``churn_scores`` and the backtest.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection

from crm.models import Tenant
from customers.handlers import NOT_ENGAGEMENT_TYPES
from customers.models import LIVE_STATUSES, Activity, CustomerProfile, LifecycleStage
from marketing.models import Interaction, InteractionKind

PROFILE = CustomerProfile._meta.db_table
ACTIVITY = Activity._meta.db_table
INTERACTION = Interaction._meta.db_table

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
# the last 90, joined to the live profiles. ``columns`` and ``joins`` add to the select (the
# nightly write joins the depth inputs of engagement here, so profiles are read once).
_FEATURES_SQL = f"""
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
           COALESCE(i.complaints_90, 0) AS complaints_90 {{columns}}
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
    {{joins}}
    WHERE p.tenant_id = %(tenant)s AND p.status = ANY(%(live)s) AND p.deleted_at IS NULL
"""  # noqa: S608


def features_sql(*, columns: str = "", joins: str = "") -> str:
    return _FEATURES_SQL.format(columns=columns, joins=joins)


FEATURES_SQL = features_sql()
_REASON_ITEMS = ", ".join(
    f"CASE WHEN {condition} THEN jsonb_build_object('code', '{code}', 'points', {points}, "
    f"{facts}) END"
    for code, points, condition, facts in REASONS
)
_POINTS = " + ".join(
    f"CASE WHEN {condition} THEN {points} ELSE 0 END" for _, points, condition, _ in REASONS
)
# Over the features ``f``: the risk (0-100) and the reasons (a JSON array).
POINTS_SQL = f"least(100, {_POINTS})"
REASONS_SQL = f"to_jsonb(array_remove(ARRAY[{_REASON_ITEMS}], NULL))"
# Every live profile: id, churn risk, reasons (a JSON array), engagement score.
CHURN_SQL = f"""
    SELECT f.id, {POINTS_SQL} AS risk, {REASONS_SQL} AS reasons, f.engagement_score
    FROM ({FEATURES_SQL}) f
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
