"""The calendar of publications: one tenant's month, day by day in the tenant's timezone."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from django.db.models import F
from django.db.models.functions import Coalesce

from crm.models import Tenant

from .models import Publication


@dataclass
class Day:
    day: date
    in_month: bool
    publications: list[Publication] = field(default_factory=list)


def _month_start(year: int, month: int, zone: ZoneInfo) -> datetime:
    return datetime.combine(date(year, month, 1), time(0), tzinfo=zone)


def publications_calendar(
    *,
    tenant: Tenant,
    year: int,
    month: int,
    club_id: str | None = None,
    platform: str | None = None,
) -> list[list[Day]]:
    """Weeks (Monday first) of ``Day`` cells for ``month`` in the tenant's timezone, each
    with the publications due or published that local day (published ones at their
    publication time, the others at their scheduled time; drafts with no time are left
    out). One query for the month; the local midnights are computed in Python, so a day
    across a daylight-saving change is 23 or 25 hours long as it should be."""
    zone = ZoneInfo(tenant.timezone)
    start = _month_start(year, month, zone)
    end = _month_start(year + month // 12, month % 12 + 1, zone)
    rows = (
        Publication.objects.for_tenant(tenant)
        .annotate(when=Coalesce(F("published_at"), F("scheduled_at")))
        .filter(when__gte=start, when__lt=end)
        .select_related("post", "connection", "connection__club")
        .order_by("when", "pk")
    )
    if club_id:
        rows = rows.filter(connection__club_id=club_id)
    if platform:
        rows = rows.filter(connection__platform=platform)
    by_day: dict[date, list[Publication]] = {}
    for row in rows:
        local = row.when.astimezone(zone)  # type: ignore[attr-defined]
        # Formatted here: the template's |time would show the admin's active timezone.
        row.local_time = local.strftime("%H:%M")  # type: ignore[attr-defined]
        by_day.setdefault(local.date(), []).append(row)
    return [
        [Day(day=d, in_month=d.month == month, publications=by_day.get(d, [])) for d in week]
        for week in calendar.Calendar(firstweekday=0).monthdatescalendar(year, month)
    ]


__all__ = ["Day", "publications_calendar"]
