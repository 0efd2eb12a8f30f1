"""The churn backtest: score every member as of a past date and see how well the risk ranks
those who lapsed in the following ``horizon_days``.

- Population: live profiles that were members at ``as_of``: lifecycle MEMBER, LAPSED or
  CHURNED, joined on or before that (local) date or with no join date, and not already
  lapsed then (status ACTIVE, or a membership change after ``as_of``).
- Churned: a lapse after ``as_of`` and within the horizon: membership status LAPSED or
  lifecycle LAPSED/CHURNED with ``membership_updated_at`` in the window, or an
  ``scl.member.lapsed`` activity in it.
- AUC: the probability that a random churner has a higher risk than a random stayer (ties
  count half; Mann-Whitney on average ranks). 0.5 is a coin, 1.0 a perfect ranking.
- Top-decile lift: the churn rate of the riskiest 10% (ties broken by profile id) over the
  churn rate of everyone. 1.0 is no better than random.

Reads only data up to ``as_of`` for the features (``churn.CHURN_SQL`` takes ``as_of``), except
``membership_renewal_on`` and ``lifecycle_stage`` which hold today's values (the profile keeps
no history of them): a known, documented leak (docs/scoring.md).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from crm.models import Tenant
from customers.models import Activity, CustomerProfile, LifecycleStage

from .churn import CHURN_SQL, churn_params
from .models import Backtest

PROFILE = CustomerProfile._meta.db_table
ACTIVITY = Activity._meta.db_table
LAPSED_EVENT = "scl.member.lapsed"

BACKTEST_SQL = f"""
    SELECT c.id, c.risk,
           ((p.membership_status = 'LAPSED'
             OR p.lifecycle_stage IN ('{LifecycleStage.LAPSED}', '{LifecycleStage.CHURNED}'))
            AND p.membership_updated_at > %(as_of)s::timestamptz
            AND p.membership_updated_at <= %(until)s::timestamptz)
           OR EXISTS (SELECT 1 FROM "{ACTIVITY}" a
                      WHERE a.tenant_id = %(tenant)s AND a.customer_id = p.id
                        AND a.type = '{LAPSED_EVENT}'
                        AND a.occurred_at > %(as_of)s::timestamptz
                        AND a.occurred_at <= %(until)s::timestamptz) AS churned
    FROM ({CHURN_SQL}) c
    JOIN "{PROFILE}" p ON p.id = c.id AND p.tenant_id = %(tenant)s
    WHERE p.lifecycle_stage IN ('{LifecycleStage.MEMBER}', '{LifecycleStage.LAPSED}',
                                '{LifecycleStage.CHURNED}')
      AND (p.membership_joined_on IS NULL OR p.membership_joined_on <= %(local_date)s)
      AND (p.membership_status = 'ACTIVE' OR p.membership_updated_at IS NULL
           OR p.membership_updated_at > %(as_of)s::timestamptz)
"""  # noqa: S608


def auc(pairs: list[tuple[int, bool]]) -> float | None:
    """Mann-Whitney AUC of ``(score, positive)`` pairs; None without both classes."""
    positives = sum(1 for _, p in pairs if p)
    negatives = len(pairs) - positives
    if not positives or not negatives:
        return None
    ordered = sorted(pairs, key=lambda pair: pair[0])
    rank_sum = 0.0
    i = 0
    while i < len(ordered):
        j = i
        while j < len(ordered) and ordered[j][0] == ordered[i][0]:
            j += 1
        average_rank = (i + 1 + j) / 2  # ranks i+1..j share their mean
        rank_sum += average_rank * sum(1 for _, p in ordered[i:j] if p)
        i = j
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def top_decile_lift(rows: list[tuple[str, int, bool]]) -> tuple[float | None, int]:
    """``rows``: ``(id, score, churned)``. Returns (lift, churners in the top decile)."""
    if not rows:
        return None, 0
    overall = sum(1 for _, _, c in rows if c) / len(rows)
    top = sorted(rows, key=lambda r: (-r[1], r[0]))[: math.ceil(len(rows) / 10)]
    hits = sum(1 for _, _, c in top if c)
    return ((hits / len(top)) / overall if overall else None), hits


def backtest_run(
    *, tenant: Tenant, as_of: datetime, horizon_days: int = 90, now: datetime | None = None
) -> Backtest:
    """Scores the tenant's members as of ``as_of`` and stores how well churn was ranked.
    ``as_of + horizon`` must not be after ``now`` (the outcome must be known)."""
    now = now or timezone.now()
    until = as_of + timedelta(days=horizon_days)
    if until > now:
        raise ValueError(f"The {horizon_days} days after as_of have not passed yet.")
    params = {**churn_params(tenant, as_of), "until": until}
    with connection.cursor() as cursor:
        cursor.execute(BACKTEST_SQL, params)
        rows = [(str(pk), risk, bool(churned)) for pk, risk, churned in cursor.fetchall()]
    area = auc([(risk, churned) for _, risk, churned in rows])
    lift, hits = top_decile_lift(rows)
    return Backtest.objects.create(
        tenant=tenant,
        as_of=as_of,
        horizon_days=horizon_days,
        population=len(rows),
        churners=sum(1 for _, _, c in rows if c),
        auc=None if area is None else Decimal(str(round(area, 4))),
        top_decile_lift=None if lift is None else Decimal(str(round(lift, 3))),
        top_decile_churners=hits,
    )
