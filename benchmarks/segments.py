"""Segments at scale: preview count, first refresh, a refresh where about 1% changed."""

from __future__ import annotations

import statistics
import time
import uuid

from django.db import connection

from crm.models import Region
from crm.services import tenant_create
from customers.models import CustomerProfile
from marketing.models import Segment, SegmentChange, SegmentMembership
from marketing.segments import segment_create, segment_preview, segment_refresh

from .identity import _ensure_profiles

TARGETS = {
    "first_refresh_s": 10.0,
    "one_percent_refresh_s": 3.0,
    "preview_count_s": 1.0,
}
CRITERIA = {
    "combinator": "AND",
    "rules": [
        {"field": "email_opt_in", "operator": "eq", "value": True},
        {"field": "lifecycle_stage", "operator": "in", "value": ["MEMBER", "LAPSED"]},
        {"field": "last_activity_at", "operator": "gte", "value": {"days_ago": 120}},
        {"field": "handicap_index", "operator": "lt", "value": 30},
    ],
}


def _change_one_percent(tenant, segment, total: int) -> int:
    """Half of 1% of the people leave (opt out of email), half enter (opt in)."""
    half = total // 200
    table = CustomerProfile._meta.db_table
    members = SegmentMembership._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE "{table}" SET email_opt_in = false WHERE id IN (
                SELECT customer_id FROM "{members}" WHERE segment_id = %s LIMIT %s)""",  # noqa: S608
            [segment.pk, half],
        )
        left = cursor.rowcount
        cursor.execute(
            f"""UPDATE "{table}" SET email_opt_in = true WHERE id IN (
                SELECT id FROM "{table}" WHERE tenant_id = %s AND NOT email_opt_in
                  AND lifecycle_stage IN ('MEMBER', 'LAPSED') AND handicap_index < 30
                  AND last_activity_at >= now() - interval '100 days'
                LIMIT %s)""",  # noqa: S608
            [tenant.pk, half],
        )
        return left + cursor.rowcount


def run(*, profiles: int, quick: bool, env: dict[str, str], log) -> dict:
    tenant, _ = tenant_create(slug="bench", name="Bench Golf Club", region=Region.ZA)
    total = _ensure_profiles(tenant, profiles, log)
    with connection.cursor() as cursor:
        cursor.execute(f'VACUUM ANALYZE "{CustomerProfile._meta.db_table}"')

    previews = []
    for _ in range(3 if quick else 7):
        started = time.perf_counter()
        preview = segment_preview(tenant=tenant, criteria=CRITERIA)
        previews.append(time.perf_counter() - started)
    log(f"preview: {preview.count:,} of {total:,}, median {statistics.median(previews):.3f}s")

    segment = segment_create(
        tenant=tenant,
        data={
            "name": f"bench-{uuid.uuid4().hex[:8]}",
            "criteria": CRITERIA,
            "refresh_frequency": "MANUAL",
        },
    )
    try:
        started = time.perf_counter()
        first = segment_refresh(segment=segment)
        first_s = time.perf_counter() - started
        log(f"first refresh: {first.members:,} members in {first_s:.2f}s")

        changed = _change_one_percent(tenant, segment, total)
        started = time.perf_counter()
        second = segment_refresh(segment=segment)
        second_s = time.perf_counter() - started
        log(f"1% refresh: +{second.entered:,} -{second.left:,} in {second_s:.2f}s")

        started = time.perf_counter()
        third = segment_refresh(segment=segment)
        unchanged_s = time.perf_counter() - started
    finally:
        SegmentChange.objects.filter(segment=segment).delete()
        SegmentMembership.objects.filter(segment=segment).delete()
        Segment.objects.filter(pk=segment.pk).delete()
    return {
        "data": {"profiles": total, "criteria": CRITERIA},
        "preview": {
            "count": preview.count,
            "share": round(preview.count / total, 3),
            "median_s": round(statistics.median(previews), 3),
            "max_s": round(max(previews), 3),
            "runs": len(previews),
        },
        "first_refresh": {
            "members": first.members,
            "entered": first.entered,
            "seconds": round(first_s, 2),
        },
        "one_percent_refresh": {
            "profiles_changed": changed,
            "entered": second.entered,
            "left": second.left,
            "members": second.members,
            "seconds": round(second_s, 2),
        },
        "unchanged_refresh": {
            "seconds": round(unchanged_s, 2),
            "entered": third.entered,
            "left": third.left,
        },
        "checks": {
            "first_refresh_s": round(first_s, 2),
            "one_percent_refresh_s": round(second_s, 2),
            "preview_count_s": round(statistics.median(previews), 3),
        },
        "targets": TARGETS,
    }
