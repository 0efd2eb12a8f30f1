"""The engagement score (guide §10.1), computed for a whole tenant in one statement.

Score = round(0.30 recency + 0.25 frequency + 0.20 monetary + 0.15 breadth + 0.10 depth),
each component 0-100 (docs/scoring.md has the buckets):

- recency: whole days since ``last_activity_at`` (floor of elapsed / 24 h): <=7 100, <=14 80,
  <=30 60, <=60 40, <=90 20, else or never 0;
- frequency: ``activity_count_30d`` (engagement only, ``customers.handlers``): >=20 100,
  >=10 80, >=5 60, >=2 40, >=1 20, else 0;
- monetary: ``lifetime_value_minor`` against the tenant's thresholds (major units,
  ``ScoringSettings``; the guide's 100000/50000/20000/10000/5000 by default): 100..20, 0;
- breadth: 25 per channel opted in (email, SMS, push, WhatsApp);
- depth: marketing messages SENT in the 30 days up to ``now``. None: 50. Otherwise
  round(50 * opened / sent + 50 * clicked / max(opened, 1)), counting distinct messages, a
  click counting as an open (a reader with images off clicks without an "open"), so both
  rates stay within 0..1.

All roundings are half up and done in integers (no float or numeric division), so the SQL
and the Python reference (``engagement_reference``) agree exactly.

Bands: high 70-100, medium 40-69, low 0-39.

Only live profiles (not merged, erased or deleted) are scored. The nightly run writes the
scores together with churn risk in one statement (``scoring.scores``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from crm.models import Tenant
from customers.handlers import minor_units
from customers.models import CHANNELS, LIVE_STATUSES, CustomerProfile
from marketing.models import Interaction, InteractionKind, Message, MessageStatus

from .models import DEFAULT_MONETARY_THRESHOLDS, Band, ScoringSettings

PROFILE = CustomerProfile._meta.db_table
MESSAGE = Message._meta.db_table
INTERACTION = Interaction._meta.db_table

# Weights in hundredths, so the total is an integer before its one rounding.
WEIGHTS: dict[str, int] = {
    "recency": 30,
    "frequency": 25,
    "monetary": 20,
    "breadth": 15,
    "depth": 10,
}
RECENCY_BUCKETS: tuple[tuple[int, int], ...] = ((7, 100), (14, 80), (30, 60), (60, 40), (90, 20))
FREQUENCY_BUCKETS: tuple[tuple[int, int], ...] = ((20, 100), (10, 80), (5, 60), (2, 40), (1, 20))
MONETARY_POINTS: tuple[int, ...] = (100, 80, 60, 40, 20)
DEPTH_WINDOW_DAYS = 30
DEPTH_WITHOUT_SENDS = 50
POINTS_PER_CHANNEL = 25
BAND_FLOORS: tuple[tuple[int, str], ...] = ((70, Band.HIGH), (40, Band.MEDIUM), (0, Band.LOW))


def band_for(score: int) -> str:
    for floor, band in BAND_FLOORS:
        if score >= floor:
            return band
    return Band.LOW


def monetary_thresholds_minor(*, tenant: Tenant) -> list[int]:
    """The tenant's lifetime-value thresholds in minor units of its currency."""
    row = ScoringSettings.objects.for_tenant(tenant).first()
    major = row.monetary_thresholds if row else DEFAULT_MONETARY_THRESHOLDS
    return [minor_units(str(amount), tenant.currency) for amount in major]


# ----------------------------------------------------------------------------- reference


@dataclass(frozen=True)
class EngagementInputs:
    """What one profile's score depends on (the Python reference's input)."""

    last_activity_at: datetime | None
    activity_count_30d: int
    lifetime_value_minor: int
    channels_opted_in: int
    sent: int
    opened: int
    clicked: int


def _half_up(numerator: int, denominator: int) -> int:
    return (2 * numerator + denominator) // (2 * denominator)


def engagement_components(
    inputs: EngagementInputs, *, now: datetime, thresholds_minor: list[int]
) -> dict[str, int]:
    """§10.1 component by component, in plain Python: the specification the SQL is tested
    against."""
    recency = 0
    if inputs.last_activity_at is not None:
        days = int((now - inputs.last_activity_at).total_seconds() // 86400)
        recency = next((pts for limit, pts in RECENCY_BUCKETS if days <= limit), 0)
    frequency = next(
        (pts for floor, pts in FREQUENCY_BUCKETS if inputs.activity_count_30d >= floor), 0
    )
    monetary = next(
        (
            pts
            for floor, pts in zip(thresholds_minor, MONETARY_POINTS, strict=True)
            if inputs.lifetime_value_minor >= floor
        ),
        0,
    )
    breadth = POINTS_PER_CHANNEL * inputs.channels_opted_in
    if inputs.sent == 0:
        depth = DEPTH_WITHOUT_SENDS
    else:
        opened = max(inputs.opened, 1)
        # 50*o/s + 50*c/o as one fraction: (50*o*o + 50*c*s) / (s*o).
        depth = _half_up(
            50 * inputs.opened * opened + 50 * inputs.clicked * inputs.sent, inputs.sent * opened
        )
    return {
        "recency": recency,
        "frequency": frequency,
        "monetary": monetary,
        "breadth": breadth,
        "depth": depth,
    }


def engagement_reference(
    inputs: EngagementInputs, *, now: datetime, thresholds_minor: list[int]
) -> int:
    parts = engagement_components(inputs, now=now, thresholds_minor=thresholds_minor)
    return _half_up(sum(WEIGHTS[name] * value for name, value in parts.items()), 100)


# ----------------------------------------------------------------------------- set-wise SQL


def _case(expression: str, buckets: tuple[tuple[int, int], ...], op: str) -> str:
    arms = " ".join(f"WHEN {expression} {op} {limit} THEN {pts}" for limit, pts in buckets)
    return f"CASE {arms} ELSE 0 END"


_DAYS = "floor(extract(epoch FROM (%(now)s::timestamptz - p.last_activity_at)) / 86400)"
_RECENCY = (
    f"CASE WHEN p.last_activity_at IS NULL THEN 0 ELSE {_case(_DAYS, RECENCY_BUCKETS, '<=')} END"
)
_MONETARY = (
    "CASE "
    + " ".join(
        f"WHEN p.lifetime_value_minor >= %(m{i})s THEN {pts}"
        for i, pts in enumerate(MONETARY_POINTS)
    )
    + " ELSE 0 END"
)
_BREADTH = (
    f"{POINTS_PER_CHANNEL} * ("
    + " + ".join(f"p.{channel}_opt_in::int" for channel in CHANNELS)
    + ")"
)
_DEPTH = (
    f"CASE WHEN COALESCE(d.sent, 0) = 0 THEN {DEPTH_WITHOUT_SENDS} ELSE "
    "(2 * (50 * d.opened * greatest(d.opened, 1) + 50 * d.clicked * d.sent)"
    " + d.sent * greatest(d.opened, 1)) / (2 * d.sent * greatest(d.opened, 1)) END"
)

# Depth inputs per customer: their marketing messages sent in the window, each counted once
# however many opens or clicks it had. Interactions after ``now`` are ignored (a rerun as of
# an earlier time sees what was known then).
DEPTH_SQL = f"""
    SELECT m.customer_id,
           count(*)::bigint AS sent,
           count(*) FILTER (WHERE i.opened)::bigint AS opened,
           count(*) FILTER (WHERE i.clicked)::bigint AS clicked
    FROM "{MESSAGE}" m
    LEFT JOIN (
        SELECT message_id,
               bool_or(kind IN ('{InteractionKind.OPENED}', '{InteractionKind.CLICKED}')) AS opened,
               bool_or(kind = '{InteractionKind.CLICKED}') AS clicked
        FROM "{INTERACTION}"
        WHERE tenant_id = %(tenant)s
          AND occurred_at > %(now)s::timestamptz - interval '{DEPTH_WINDOW_DAYS} days'
          AND occurred_at <= %(now)s::timestamptz
        GROUP BY message_id
    ) i ON i.message_id = m.id
    WHERE m.tenant_id = %(tenant)s AND m.status = '{MessageStatus.SENT}'
      AND m.sent_at > %(now)s::timestamptz - interval '{DEPTH_WINDOW_DAYS} days'
      AND m.sent_at <= %(now)s::timestamptz
    GROUP BY m.customer_id
"""  # noqa: S608


def engagement_sql(*, count: str = "p.activity_count_30d") -> str:
    """The score of profile ``p`` with its depth inputs ``d`` (a LEFT JOIN of ``DEPTH_SQL``):
    integer half-up rounding of the weighted total. ``count``: the 30-day engagement count
    (the nightly write passes the count it has just recounted)."""
    total = " + ".join(
        f"{WEIGHTS[name]} * ({sql})"
        for name, sql in (
            ("recency", _RECENCY),
            ("frequency", _case(count, FREQUENCY_BUCKETS, ">=")),
            ("monetary", _MONETARY),
            ("breadth", _BREADTH),
            ("depth", _DEPTH),
        )
    )
    return f"(({total}) + 50) / 100"


DEPTH_JOIN = f"LEFT JOIN ({DEPTH_SQL}) d ON d.customer_id = p.id"
# Every live profile of the tenant with its score.
SCORES_SQL = f"""
    SELECT p.id, {engagement_sql()} AS score
    FROM "{PROFILE}" p
    {DEPTH_JOIN}
    WHERE p.tenant_id = %(tenant)s AND p.status = ANY(%(live)s) AND p.deleted_at IS NULL
"""  # noqa: S608


def engagement_params(tenant: Tenant, now: datetime) -> dict[str, Any]:
    params: dict[str, Any] = {"tenant": tenant.pk, "now": now, "live": list(LIVE_STATUSES)}
    for i, threshold in enumerate(monetary_thresholds_minor(tenant=tenant)):
        params[f"m{i}"] = threshold
    return params


def engagement_scores(*, tenant: Tenant, now: datetime | None = None) -> dict[Any, int]:
    """Read-only: every live profile's engagement score at ``now`` (id -> score). The
    nightly write (``scoring.scores``) uses the same expression (``engagement_sql``)."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(SCORES_SQL, engagement_params(tenant, now))
        return dict(cursor.fetchall())
