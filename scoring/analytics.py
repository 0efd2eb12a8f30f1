"""Daily aggregates per tenant (written by the nightly run) and the reads behind
``/api/v1/analytics`` and the dashboards.

The reads never scan profiles, messages or the sync log: they read ``DailyStats``, one row
per tenant and day, so they cost the same at 1M profiles as at 100. The nightly run writes
the row of the local day that just ended (``daily_stats_record``): snapshots (members by
lifecycle, active in 30 days, bands, histograms) as of the run, flows (new profiles, lapses,
messages, events) over that local day. A rerun the same day overwrites the row (upsert).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection
from django.utils import timezone

from crm.models import Tenant
from customers.models import LIVE_STATUSES, CustomerProfile, SyncLogEntry
from marketing.models import Interaction, InteractionKind, Message, MessageStatus

from .models import Band, DailyStats, Score

PROFILE = CustomerProfile._meta.db_table
SYNC_LOG = SyncLogEntry._meta.db_table
MESSAGE = Message._meta.db_table
INTERACTION = Interaction._meta.db_table
SCORE = Score._meta.db_table
AT_RISK = 60  # churn risk from which a member is "at risk" (dashboards, the at-risk list)
MAX_DAYS = 366

_PROFILES_SQL = f"""
    SELECT lifecycle_stage, count(*),
           count(*) FILTER (WHERE last_activity_at > %(now)s::timestamptz - interval '30 days'
                            AND last_activity_at <= %(now)s::timestamptz),
           count(*) FILTER (WHERE created_at >= %(start)s AND created_at < %(end)s),
           count(*) FILTER (WHERE membership_status = 'LAPSED'
                            AND membership_updated_at >= %(start)s
                            AND membership_updated_at < %(end)s)
    FROM "{PROFILE}"
    WHERE tenant_id = %(tenant)s AND status = ANY(%(live)s) AND deleted_at IS NULL
    GROUP BY lifecycle_stage
"""  # noqa: S608
_SCORES_SQL = f"""
    SELECT band, count(*), least(engagement / 10, 9), least(churn_risk / 10, 9),
           sum(engagement), sum(churn_risk), count(*) FILTER (WHERE churn_risk >= {AT_RISK})
    FROM "{SCORE}" WHERE tenant_id = %(tenant)s
    GROUP BY band, least(engagement / 10, 9), least(churn_risk / 10, 9)
"""  # noqa: S608
_MESSAGES_SQL = f"""
    SELECT
      (SELECT count(*) FROM "{MESSAGE}" WHERE tenant_id = %(tenant)s
         AND status = '{MessageStatus.SENT}' AND sent_at >= %(start)s AND sent_at < %(end)s),
      count(DISTINCT message_id) FILTER (WHERE kind IN ('{InteractionKind.OPENED}',
                                                        '{InteractionKind.CLICKED}')),
      count(DISTINCT message_id) FILTER (WHERE kind = '{InteractionKind.CLICKED}')
    FROM "{INTERACTION}"
    WHERE tenant_id = %(tenant)s AND occurred_at >= %(start)s AND occurred_at < %(end)s
"""  # noqa: S608
_EVENTS_SQL = f"""
    SELECT source, count(*) FROM "{SYNC_LOG}"
    WHERE tenant_id = %(tenant)s AND created_at >= %(start)s AND created_at < %(end)s
    GROUP BY source
"""  # noqa: S608


def local_day_bounds(tz: ZoneInfo, day: date) -> tuple[datetime, datetime]:
    """The instants a local day starts and ends (23 or 25 hours on DST change days)."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return start, end


def daily_stats_record(*, tenant: Tenant, now: datetime | None = None) -> DailyStats:
    """Aggregates the tenant's local day before ``now`` (see the module docstring)."""
    now = now or timezone.now()
    tz = ZoneInfo(tenant.timezone)
    day = now.astimezone(tz).date() - timedelta(days=1)
    start, end = local_day_bounds(tz, day)
    params = {
        "tenant": tenant.pk,
        "now": now,
        "start": start,
        "end": end,
        "live": list(LIVE_STATUSES),
    }
    values: dict[str, Any] = {
        "members_by_lifecycle": {},
        "profiles": 0,
        "active_30d": 0,
        "new_profiles": 0,
        "lapsed": 0,
    }
    bands = {band: 0 for band in Band.values}
    engagement_histogram, churn_histogram = [0] * 10, [0] * 10
    scored = engagement_sum = churn_sum = at_risk = 0
    with connection.cursor() as cursor:
        cursor.execute(_PROFILES_SQL, params)
        for stage, count, active, new, lapsed in cursor.fetchall():
            values["members_by_lifecycle"][stage] = count
            values["profiles"] += count
            values["active_30d"] += active
            values["new_profiles"] += new
            values["lapsed"] += lapsed
        cursor.execute(_SCORES_SQL, params)
        for band, count, e_bucket, c_bucket, e_sum, c_sum, risky in cursor.fetchall():
            bands[band] += count
            engagement_histogram[e_bucket] += count
            churn_histogram[c_bucket] += count
            scored += count
            engagement_sum += e_sum
            churn_sum += c_sum
            at_risk += risky
        cursor.execute(_MESSAGES_SQL, params)
        sent, opened, clicked = cursor.fetchone()
        cursor.execute(_EVENTS_SQL, params)
        events = dict(cursor.fetchall())
    values.update(
        bands=bands,
        engagement_histogram=engagement_histogram,
        churn_histogram=churn_histogram,
        at_risk=at_risk,
        avg_engagement=round(engagement_sum / scored, 2) if scored else None,
        avg_churn=round(churn_sum / scored, 2) if scored else None,
        messages_sent=sent,
        messages_opened=opened,
        messages_clicked=clicked,
        events_by_source=events,
    )
    stats, _ = DailyStats.objects.update_or_create(tenant=tenant, day=day, defaults=values)
    return stats


# ----------------------------------------------------------------------------- reads


def _series(tenant: Tenant, days: int) -> list[DailyStats]:
    days = max(1, min(days, MAX_DAYS))
    rows = DailyStats.objects.for_tenant(tenant).order_by("-day")[:days]
    return list(reversed(rows))


def analytics_overview(*, tenant: Tenant) -> dict[str, Any]:
    """Members by lifecycle and active in 30 days (latest day), new profiles and lapses
    over the last 30 recorded days."""
    recent = _series(tenant, 30)
    latest = recent[-1] if recent else None
    return {
        "as_of": latest.day if latest else None,
        "profiles": latest.profiles if latest else 0,
        "members_by_lifecycle": latest.members_by_lifecycle if latest else {},
        "active_30d": latest.active_30d if latest else 0,
        "new_30d": sum(row.new_profiles for row in recent),
        "lapsed_30d": sum(row.lapsed for row in recent),
        "at_risk": latest.at_risk if latest else 0,
    }


def analytics_distributions(*, tenant: Tenant) -> dict[str, Any]:
    latest = _series(tenant, 1)
    row = latest[0] if latest else None
    buckets = [f"{10 * i}-{10 * i + 9 if i < 9 else 100}" for i in range(10)]
    return {
        "as_of": row.day if row else None,
        "buckets": buckets,
        "engagement": row.engagement_histogram if row else [0] * 10,
        "churn_risk": row.churn_histogram if row else [0] * 10,
        "bands": row.bands if row else {band: 0 for band in Band.values},
    }


def analytics_trends(*, tenant: Tenant, days: int) -> list[dict[str, Any]]:
    return [
        {
            "day": row.day,
            "avg_engagement": row.avg_engagement,
            "avg_churn_risk": row.avg_churn,
            "at_risk": row.at_risk,
            "active_30d": row.active_30d,
            "bands": row.bands,
        }
        for row in _series(tenant, days)
    ]


def analytics_campaigns(*, tenant: Tenant, days: int) -> list[dict[str, Any]]:
    return [
        {
            "day": row.day,
            "sent": row.messages_sent,
            "opened": row.messages_opened,
            "clicked": row.messages_clicked,
        }
        for row in _series(tenant, days)
    ]


def analytics_events(*, tenant: Tenant, days: int) -> list[dict[str, Any]]:
    return [
        {
            "day": row.day,
            "total": sum(row.events_by_source.values()),
            "by_source": row.events_by_source,
        }
        for row in _series(tenant, days)
    ]


def export_scores(
    *, tenant: Tenant, customer: CustomerProfile, people: list[Any], viewer: Any
) -> Any:
    """Export section: the person's current scores with the churn reason codes."""
    rows = Score.objects.filter(tenant=tenant, customer_id__in=people)
    return (
        rows.order_by("id")
        .values("computed_at", "engagement", "band", "churn_risk", "reasons")
        .iterator(chunk_size=2000)
    )
