"""SYNTHETIC round histories and lapses for demo tenants, so the churn backtest has
something to find. Run after ``generate_demo_data`` (``manage.py generate_scoring_demo``).
Nothing here is real data, and nothing here runs outside demos.

Set-wise: one INSERT ... SELECT over ``generate_series`` writes every round. For up to
``members`` of the tenant's members (lifecycle MEMBER), chosen by a hash of their id:

- each plays every 4-24 days (their own interval, from the hash) over the 540 days before
  ``now``;
- about ``churn_percent`` of them are future churners: they lapse on a day spread over the
  240 days before ``now``; in the 120 days before lapsing they play at half the rate, and
  not at all in the last 45; their status becomes LAPSED with an ``scl.member.lapsed``
  activity at the lapse;
- about a fifth of churners show none of this before lapsing (the signal is not perfect),
  and one stayer in ten takes a 60-day break (false alarms).

Run it once per tenant: activities are keyed by (source ``demo-scoring``, a derived event
id), so a rerun never duplicates a round, but it picks further members.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from crm.models import Tenant
from customers.models import Activity, CustomerProfile, LifecycleStage

PROFILE = CustomerProfile._meta.db_table
ACTIVITY = Activity._meta.db_table
SOURCE = "demo-scoring"

_PEOPLE = f"""
    WITH people AS (
        SELECT p.id,
               4 + abs(hashtext(k.key || %(seed)s)) %% 21 AS every_days,
               abs(hashtext('churn' || k.key || %(seed)s)) %% 100 < %(churn_percent)s
                   AS churner,
               abs(hashtext('noise' || k.key || %(seed)s)) %% 10 AS noise,
               %(now)s::timestamptz
                   - (abs(hashtext('lapse' || k.key || %(seed)s)) %% 240) * interval '1 day'
                   AS lapse_at
        FROM "{PROFILE}" p
        -- Who a person is, for the seeded draws: the email where there is one (generated
        -- data has stable emails; ids are random), so a seed gives the same history.
        CROSS JOIN LATERAL (SELECT COALESCE(NULLIF(p.email, ''), p.id::text) AS key) k
        WHERE p.tenant_id = %(tenant)s AND p.lifecycle_stage = '{LifecycleStage.MEMBER}'
          AND p.status IN ('ACTIVE', 'INACTIVE') AND p.deleted_at IS NULL
        ORDER BY k.key, p.id
        LIMIT %(members)s
    )
"""  # noqa: S608

_ROUNDS_SQL = f"""
    {_PEOPLE}
    INSERT INTO "{ACTIVITY}" (tenant_id, customer_id, type, category, title, metadata,
                              source_service, source_id, source_event_id, occurred_at,
                              created_at, updated_at)
    SELECT %(tenant)s, r.id, 'teetime.round.completed', 'golf', 'Played a round (demo)',
           '{{"synthetic": true}}'::jsonb, '{SOURCE}', '', 'round-' || r.id || '-' || r.n,
           r.at, %(now)s, %(now)s
    FROM (
        SELECT people.*, g.n,
               %(now)s::timestamptz - (540 - g.n * people.every_days) * interval '1 day'
                   + (g.n %% 9) * interval '1 hour' AS at
        FROM people, generate_series(0, 540 / 4) AS g(n)
        WHERE g.n * people.every_days <= 540
    ) r
    WHERE r.at <= %(now)s::timestamptz
      AND NOT (r.churner AND r.at > r.lapse_at)
      -- churners with a signal: half the rounds in the 120 days before, none in the last 45
      AND NOT (r.churner AND r.noise >= 2 AND r.at > r.lapse_at - interval '45 days')
      AND NOT (r.churner AND r.noise >= 2 AND r.at > r.lapse_at - interval '120 days'
               AND r.n %% 2 = 1)
      -- false alarms: one stayer in ten takes a 60-day break ending a month ago
      AND NOT (NOT r.churner AND r.noise = 0
               AND r.at > %(now)s::timestamptz - interval '90 days'
               AND r.at <= %(now)s::timestamptz - interval '30 days')
    ON CONFLICT (tenant_id, source_service, source_event_id) DO NOTHING
"""  # noqa: S608

_LAPSES_SQL = f"""
    {_PEOPLE}
    , lapsed AS (
        UPDATE "{PROFILE}" p SET membership_status = 'LAPSED',
               lifecycle_stage = '{LifecycleStage.LAPSED}', membership_updated_at = l.lapse_at
        FROM people l WHERE l.churner AND p.id = l.id AND p.tenant_id = %(tenant)s
        RETURNING p.id, l.lapse_at
    )
    INSERT INTO "{ACTIVITY}" (tenant_id, customer_id, type, category, title, metadata,
                              source_service, source_id, source_event_id, occurred_at,
                              created_at, updated_at)
    SELECT %(tenant)s, id, 'scl.member.lapsed', 'membership', 'Membership lapsed (demo)',
           '{{"synthetic": true}}'::jsonb, '{SOURCE}', '', 'lapsed-' || id, lapse_at,
           %(now)s, %(now)s
    FROM lapsed
    ON CONFLICT (tenant_id, source_service, source_event_id) DO NOTHING
"""  # noqa: S608


def demo_history_generate(
    *,
    tenant: Tenant,
    members: int = 5000,
    churn_percent: int = 15,
    seed: int = 0,
    now: datetime | None = None,
) -> tuple[int, int]:
    """Writes the synthetic rounds and lapses; returns (rounds written, members lapsed)."""
    now = now or timezone.now()
    params = {
        "tenant": tenant.pk,
        "now": now,
        "seed": str(seed),
        "members": members,
        "churn_percent": churn_percent,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_ROUNDS_SQL, params)
        rounds = cursor.rowcount
        cursor.execute(_LAPSES_SQL, params)
        lapses = cursor.rowcount
    return rounds, lapses
