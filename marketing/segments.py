"""Segments: validation, preview, set-wise refresh, static members and CSV import.

A dynamic segment's refresh computes the matching set in SQL into a temporary table and
applies only the difference in one transaction: who left is deleted (and recorded LEFT),
who entered is inserted (and recorded ENTERED), members who stay are not touched. The
segment row is locked ``FOR UPDATE SKIP LOCKED`` for the refresh, so two refreshes of one
segment never run at once (the second returns ``None``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from crm import rules
from crm.models import Tenant
from crm.tasks import tenant_task
from customers.identity import normalize_email, normalize_phone
from customers.models import AliasKind, CustomerProfile, IdentityAlias, ProfileStatus

from .messaging import get_backend
from .models import (
    ChangeKind,
    Interaction,
    Message,
    ProfileChange,
    RefreshFrequency,
    Segment,
    SegmentChange,
    SegmentMembership,
    SegmentType,
    Suppression,
    created_by_fields,
)

SAMPLE_SIZE = 5
SLOW_REFRESH_MS = 10_000
MAX_CSV_ROWS = 100_000
REFRESH_INTERVALS: dict[str, timedelta] = {
    RefreshFrequency.HOURLY: timedelta(hours=1),
    RefreshFrequency.DAILY: timedelta(days=1),
}


class SegmentConflict(ValidationError):
    status_code = 409


def rule_context(tenant: Tenant, now: datetime | None = None) -> rules.Context:
    return rules.Context(tz=ZoneInfo(tenant.timezone), now=now or timezone.now(), tenant=tenant)


def customer_base(tenant: Tenant) -> QuerySet[CustomerProfile]:
    """Who segments choose from: the tenant's live profiles (not merged, erased or deleted)."""
    return CustomerProfile.objects.for_tenant(tenant).filter(
        status__in=[ProfileStatus.ACTIVE, ProfileStatus.INACTIVE], deleted_at__isnull=True
    )


def _segment_refs(group: rules.Group) -> Iterable[UUID]:
    for item in group.rules:
        if isinstance(item, rules.Group):
            yield from _segment_refs(item)
        elif item.field.name == "segment":
            yield from (item.value if isinstance(item.value, tuple) else (item.value,))


def criteria_parse(tenant: Tenant, raw: Any, *, segment: Segment | None = None) -> rules.Group:
    """Validate criteria for ``tenant``: fields, operators, values, and that segments named
    in rules are the tenant's and not the segment itself. Errors are keyed ``criteria.<path>``."""
    try:
        group = rules.parse(raw, rules.registry("customer"), context=tenant)
    except rules.RuleError as exc:
        raise ValidationError({f"criteria.{k}": v for k, v in exc.message_dict.items()}) from exc
    refs = set(_segment_refs(group))
    if refs:
        known = set(
            Segment.objects.for_tenant(tenant).filter(pk__in=refs).values_list("pk", flat=True)
        )
        if refs - known:
            raise ValidationError({"criteria": ["A rule names a segment that does not exist."]})
        if segment is not None and segment.pk in refs:
            raise ValidationError({"criteria": ["A segment cannot be defined by itself."]})
    return group


def matching(tenant: Tenant, group: rules.Group, now: datetime | None = None) -> QuerySet:
    return customer_base(tenant).filter(rules.to_q(group, rule_context(tenant, now)))


@dataclass
class Preview:
    count: int
    sample: list[CustomerProfile]


def segment_preview(*, tenant: Tenant, criteria: Any) -> Preview:
    """How many match, and a few of them; nothing is saved."""
    group = criteria_parse(tenant, criteria)
    people = matching(tenant, group)
    return Preview(people.count(), list(people.order_by()[:SAMPLE_SIZE]))


# ----------------------------------------------------------------------------- CRUD

SEGMENT_FIELDS = ("name", "description", "type", "criteria", "refresh_frequency", "club")


def _clean(tenant: Tenant, data: dict[str, Any], segment: Segment | None) -> dict[str, Any]:
    kind = data.get("type", segment.type if segment else SegmentType.DYNAMIC)
    criteria = data.get("criteria", segment.criteria if segment else None)
    if kind == SegmentType.DYNAMIC:
        if not criteria:
            raise ValidationError({"criteria": ["A dynamic segment needs rules."]})
        criteria_parse(tenant, criteria, segment=segment)
    elif data.get("criteria"):
        raise ValidationError({"criteria": ["A static segment has no rules; add members instead."]})
    club = data.get("club")
    if club is not None and club.tenant_id != tenant.pk:
        raise ValidationError({"club": ["Unknown club."]})
    name = data.get("name")
    if name is not None:
        clash = Segment.objects.for_tenant(tenant).filter(name=name)
        if segment is not None:
            clash = clash.exclude(pk=segment.pk)
        if clash.exists():
            raise ValidationError({"name": ["A segment with this name exists."]})
    return {k: v for k, v in data.items() if k in SEGMENT_FIELDS}


def segment_derive(segment: Segment, changed: Iterable[str] | None = None) -> None:
    """Set what follows from a segment's fields (API and admin saves): a static segment has
    no rules; the next refresh is scheduled for a new segment, or when its type or refresh
    frequency changed (``changed``: the fields that changed, None for a new segment)."""
    if segment.type == SegmentType.STATIC:
        segment.criteria = {}
    if changed is None or {"type", "refresh_frequency"} & set(changed):
        segment.next_refresh_at = _next_refresh(segment, timezone.now())


def segment_saved(*, segment: Segment, changed: Iterable[str] | None = None) -> None:
    """After a segment was saved (API and admin): a new dynamic segment, or one whose rules
    or type changed, is refreshed at once in the background; a renamed one is pushed to
    Messaging. Both are queued on commit (``changed``: the fields that changed, None for a
    new segment)."""
    changed = None if changed is None else set(changed)
    if segment.type == SegmentType.DYNAMIC and (changed is None or {"criteria", "type"} & changed):
        _queue_refresh(segment.tenant, segment.pk)
    if changed is not None and "name" in changed:
        _queue_sync(segment.tenant, segment.pk)


def segment_create(*, tenant: Tenant, data: dict[str, Any], actor: Any = None) -> Segment:
    """``actor``: who creates it (a staff user or an API principal), see
    ``created_by_fields``."""
    values = _clean(tenant, data, None)
    segment = Segment(tenant=tenant, **values, **created_by_fields(actor))
    segment_derive(segment)
    segment.save()
    segment_saved(segment=segment)
    return segment


def segment_update(*, segment: Segment, data: dict[str, Any]) -> Segment:
    values = _clean(segment.tenant, data, segment)
    changed = {name for name, value in values.items() if getattr(segment, name) != value}
    for name, value in values.items():
        setattr(segment, name, value)
    segment_derive(segment, values)
    segment.save()
    segment_saved(segment=segment, changed=changed)
    return segment


def _queue_refresh(tenant: Tenant, segment_id: Any) -> None:
    tenant_task("marketing.refresh_segment").enqueue(tenant, segment_id=str(segment_id))


def _queue_sync(tenant: Tenant, segment_id: Any) -> None:
    """Push the segment's members to Messaging once the transaction commits (every
    membership change and rename); the local backend has nothing to push."""
    if get_backend().name == "local":
        return
    tenant_task("marketing.sync_segment").enqueue(tenant, segment_id=str(segment_id))


def _next_refresh(segment: Segment, now: datetime) -> datetime | None:
    if segment.type != SegmentType.DYNAMIC:
        return None
    interval = REFRESH_INTERVALS.get(segment.refresh_frequency)
    return now + interval if interval else None


# ----------------------------------------------------------------------------- refresh

M = SegmentMembership._meta.db_table
C = SegmentChange._meta.db_table
P = ProfileChange._meta.db_table
_LEFT_SQL = f"""
    WITH gone AS (
        DELETE FROM "{M}" m
        WHERE m.tenant_id = %s AND m.segment_id = %s
          AND NOT EXISTS (SELECT 1 FROM seg_match s WHERE s.id = m.customer_id)
        RETURNING m.customer_id
    )
    INSERT INTO "{C}" (tenant_id, segment_id, customer_id, kind, created_at, updated_at)
    SELECT %s, %s, customer_id, 'LEFT', %s, %s FROM gone
"""  # noqa: S608
# Incremental: only the people checked (seg_dirty) can leave. The members among them are
# looked up in the primary key (tenant, segment, customer) by an array of ids, so the
# statement reads as many index entries as people changed, whatever the segment's size (a
# join let the planner hash the segment's every member).
_LEFT_DIRTY_SQL = f"""
    WITH gone AS (
        DELETE FROM "{M}" m
        WHERE m.tenant_id = %s AND m.segment_id = %s
          AND m.customer_id = ANY(ARRAY(
              SELECT d.id FROM seg_dirty d
              WHERE NOT EXISTS (SELECT 1 FROM seg_match s WHERE s.id = d.id)))
        RETURNING m.customer_id
    )
    INSERT INTO "{C}" (tenant_id, segment_id, customer_id, kind, created_at, updated_at)
    SELECT %s, %s, customer_id, 'LEFT', %s, %s FROM gone
"""  # noqa: S608
_ENTERED_SQL = f"""
    WITH came AS (
        INSERT INTO "{M}" (tenant_id, segment_id, customer_id, created_at, updated_at)
        SELECT %s, %s, s.id, %s, %s FROM seg_match s
        WHERE NOT EXISTS (
            SELECT 1 FROM "{M}" m
            WHERE m.tenant_id = %s AND m.segment_id = %s AND m.customer_id = s.id
        )
        ORDER BY s.id
        RETURNING customer_id
    )
    INSERT INTO "{C}" (tenant_id, segment_id, customer_id, kind, created_at, updated_at)
    SELECT %s, %s, customer_id, 'ENTERED', %s, %s FROM came
"""  # noqa: S608
# Incremental: who of the checked people matches enters unless already in. The primary key
# decides (one probe per matching person, no write for a member who stays), so the cost
# follows the people checked, not the segment's size.
_ENTERED_DIRTY_SQL = f"""
    WITH came AS (
        INSERT INTO "{M}" (tenant_id, segment_id, customer_id, created_at, updated_at)
        SELECT %s, %s, s.id, %s, %s FROM seg_match s
        ORDER BY s.id
        ON CONFLICT (tenant_id, segment_id, customer_id) DO NOTHING
        RETURNING customer_id
    )
    INSERT INTO "{C}" (tenant_id, segment_id, customer_id, kind, created_at, updated_at)
    SELECT %s, %s, customer_id, 'ENTERED', %s, %s FROM came
"""  # noqa: S608
# The people whose profile a transaction wrote that the previous refresh's snapshot did
# not see (committed after it was taken, or still running then), and those the previous
# refresh's own transaction wrote (a snapshot counts its own transaction as seen, also for
# writes made after it was taken). ProfileChange is a log (a person written by several
# transactions is there several times; seg_dirty keeps them once).
_DIRTY_SQL = f"""
    SELECT customer_id FROM "{P}"
    WHERE tenant_id = %s AND xid >= %s
      AND NOT pg_visible_in_snapshot(xid::text::xid8, %s::pg_snapshot)
    UNION ALL
    SELECT customer_id FROM "{P}" WHERE tenant_id = %s AND xid = %s
"""  # noqa: S608


@dataclass
class RefreshResult:
    members: int
    entered: int
    left: int
    ms: int
    # Incremental: only the people who changed since the last refresh were checked
    # (``checked`` of them); otherwise every profile of the tenant was.
    incremental: bool = False
    checked: int = 0


def _fingerprint(segment: Segment, tenant: Tenant) -> str:
    """What a previous refresh must share with this one to be its base: the rules, the
    segment's type and the tenant's timezone (relative days resolve in it)."""
    raw = json.dumps([segment.type, segment.criteria, tenant.timezone], sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()


def incremental_rules(group: rules.Group) -> bool:
    """Whether a refresh may check only the people who changed: every rule reads a column
    of the profile itself. Computed fields read other tables without a profile write ("N
    activities in the last D days": new activities and a moving window; "member of
    segment S": another segment's refresh), so their segments refresh in full."""
    return all(
        incremental_rules(item) if isinstance(item, rules.Group) else item.field.computed is None
        for item in group.rules
    )


def _window_moves(group: rules.Group, before: rules.Context, now: rules.Context) -> Q | None:
    """The profiles whose membership the clock alone may have changed since ``before``: a
    relative day ("30 days ago") resolved then and now gives up to four boundaries per
    rule; a value outside [lowest, highest] compares the same way with both, so only
    values inside that band (and the rule's column) need checking. ``None``: no band."""
    bands: list[Q] = []
    for item in group.rules:
        if isinstance(item, rules.Group):
            inner = _window_moves(item, before, now)
            if inner is not None:
                bands.append(inner)
            continue
        values = item.value if isinstance(item.value, tuple) else (item.value,)
        points: list[Any] = []
        for value in values:
            if not isinstance(value, rules.Day) or value.fixed is not None:
                continue
            then_day, now_day = value.resolve(before), value.resolve(now)
            if then_day == now_day:
                continue
            if item.field.type == rules.T.DATETIME:
                for ctx, day in ((before, then_day), (now, now_day)):
                    points += [ctx.start_of(day), ctx.start_of(day + timedelta(days=1))]
            else:
                points += [then_day, now_day]
        if points:
            path = item.field.path
            bands.append(Q(**{f"{path}__gte": min(points), f"{path}__lte": max(points)}))
    if not bands:
        return None
    result = bands[0]
    for band in bands[1:]:
        result |= band
    return result


def _refresh_base(locked: Segment, tenant: Tenant, group: rules.Group) -> dict | None:
    """The previous refresh this one can build on, or ``None`` (refresh in full)."""
    state = locked.refresh_state or {}
    if not state.get("xid") or state.get("fingerprint") != _fingerprint(locked, tenant):
        return None
    if not incremental_rules(group):
        return None
    return state


def first_refresh_sql(people_sql: str) -> str:
    """Everyone ``people_sql`` selects enters an empty segment, recorded ENTERED, in one
    statement. Parameters: tenant, segment, now, now, the query's, tenant, segment, now,
    now."""
    return f"""WITH came AS (
        INSERT INTO "{M}" (tenant_id, segment_id, customer_id, created_at, updated_at)
        SELECT %s, %s, q.id, %s, %s FROM ({people_sql}) q
        RETURNING customer_id
    )
    INSERT INTO "{C}" (tenant_id, segment_id, customer_id, kind, created_at, updated_at)
    SELECT %s, %s, customer_id, 'ENTERED', %s, %s FROM came"""  # noqa: S608


def _full_refresh(cursor, tenant: Tenant, locked: Segment, sql: str, params, now) -> tuple:
    ids = [tenant.pk, locked.pk]
    has_members = SegmentMembership.objects.filter(tenant=tenant, segment=locked).exists()
    if not has_members:
        # Nobody to compare with: every match enters, in one statement.
        cursor.execute(first_refresh_sql(sql), [*ids, now, now, *params, *ids, now, now])
        return cursor.rowcount, cursor.rowcount, 0
    cursor.execute("DROP TABLE IF EXISTS seg_match")
    cursor.execute("CREATE TEMP TABLE seg_match (id uuid PRIMARY KEY) ON COMMIT DROP")
    cursor.execute(f"INSERT INTO seg_match (id) {sql}", params)
    members = cursor.rowcount
    cursor.execute("ANALYZE seg_match")
    cursor.execute(_LEFT_SQL, [*ids, *ids, now, now])
    left = cursor.rowcount
    cursor.execute(_ENTERED_SQL, [*ids, now, now, *ids, *ids, now, now])
    return members, cursor.rowcount, left


def _incremental_refresh(
    cursor, tenant: Tenant, locked: Segment, group: rules.Group, base: dict, now
) -> tuple[int, int, int]:
    """Check only the people written since the previous refresh's snapshot, and those a
    relative day's move put in a band: who of them matches enters (if not in), who does
    not leaves (if in)."""
    ids = [tenant.pk, locked.pk]
    cursor.execute("DROP TABLE IF EXISTS seg_dirty")
    cursor.execute("CREATE TEMP TABLE seg_dirty (id uuid PRIMARY KEY) ON COMMIT DROP")
    snapshot = base["snapshot"]
    # Each INSERT counts the rows it added, so the two add up to the distinct people.
    cursor.execute(
        f"INSERT INTO seg_dirty (id) {_DIRTY_SQL} ON CONFLICT DO NOTHING",
        [tenant.pk, base["xmin"], snapshot, tenant.pk, base["xid"]],
    )
    checked = cursor.rowcount
    band = _window_moves(
        group, rule_context(tenant, datetime.fromisoformat(base["now"])), rule_context(tenant, now)
    )
    if band is not None:
        people = CustomerProfile.objects.for_tenant(tenant).filter(band).values("id")
        band_sql, band_params = people.query.sql_with_params()
        cursor.execute(f"INSERT INTO seg_dirty (id) {band_sql} ON CONFLICT DO NOTHING", band_params)
        checked += cursor.rowcount
    if not checked:
        return 0, 0, 0
    cursor.execute("ANALYZE seg_dirty")
    dirty = RawSQL("SELECT id FROM seg_dirty", [])
    sql, params = (
        matching(tenant, group, now)
        .filter(pk__in=dirty)
        .values("id")
        .order_by()
        .query.sql_with_params()
    )
    cursor.execute("DROP TABLE IF EXISTS seg_match")
    cursor.execute("CREATE TEMP TABLE seg_match (id uuid PRIMARY KEY) ON COMMIT DROP")
    cursor.execute(f"INSERT INTO seg_match (id) {sql}", params)
    cursor.execute(_LEFT_DIRTY_SQL, [*ids, *ids, now, now])
    left = cursor.rowcount
    cursor.execute(_ENTERED_DIRTY_SQL, [*ids, now, now, *ids, now, now])
    entered = cursor.rowcount
    return entered, left, checked


def _count(tenant: Tenant, segment: Segment) -> int:
    return SegmentMembership.objects.filter(tenant=tenant, segment=segment).count()


def segment_refresh(
    *, segment: Segment, now: datetime | None = None, full: bool = False
) -> RefreshResult | None:
    """Bring the members in line with the rules (dynamic) or recount them (static). Returns
    ``None`` when another refresh of this segment is running.

    Incremental when it can be (``incremental_rules``, same rules and timezone as the last
    refresh, not ``full``): only the people whose profile was written since the previous
    refresh's snapshot (``ProfileChange``), and those whose relative-date rule moved with
    the clock, are checked; the history records exactly who entered and left, as a full
    refresh would."""
    now = now or timezone.now()
    started = time.monotonic()
    tenant = segment.tenant
    with transaction.atomic():
        locked = (
            Segment.objects.for_tenant(tenant)
            .select_for_update(skip_locked=True)
            .filter(pk=segment.pk)
            .first()
        )
        if locked is None:
            return None
        entered = left = checked = 0
        incremental = False
        state: dict = {}
        if locked.type == SegmentType.DYNAMIC:
            group = criteria_parse(tenant, locked.criteria, segment=locked)
            base = None if full else _refresh_base(locked, tenant, group)
            with connection.cursor() as cursor:
                # Taken before the rules run: a write this snapshot does not see is checked
                # again next time (at worst twice, never missed).
                cursor.execute(
                    "SELECT s::text, pg_snapshot_xmin(s)::text::bigint, "
                    "pg_current_xact_id()::text::bigint FROM pg_current_snapshot() s"
                )
                snapshot, xmin, xid = cursor.fetchone()
                # JIT compiling these statements costs more than it saves (50-100 ms, the
                # planner's estimates of a big tenant's rows cross its threshold).
                cursor.execute("SET LOCAL jit = off")
                state = {
                    "fingerprint": _fingerprint(locked, tenant),
                    "snapshot": snapshot,
                    "xmin": xmin,
                    "xid": xid,
                    "now": now.isoformat(),
                }
                if base is not None and xid <= base["xid"]:
                    base = None  # transaction ids went back (a restored dump): start over
                if base is not None:
                    incremental = True
                    entered, left, checked = _incremental_refresh(
                        cursor, tenant, locked, group, base, now
                    )
                    members = _count(tenant, locked)
                else:
                    # In customer order: the membership and history indexes keyed by customer
                    # are then written in order (about twice as fast on a million people as
                    # the table's order); a sort that size needs more than the default
                    # work_mem.
                    cursor.execute("SET LOCAL work_mem = '64MB'")
                    people = matching(tenant, group, now).values("id").order_by("id")
                    sql, params = people.query.sql_with_params()
                    members, entered, left = _full_refresh(cursor, tenant, locked, sql, params, now)
        else:
            members = _count(tenant, locked)
        ms = int((time.monotonic() - started) * 1000)
        Segment.objects.filter(pk=locked.pk).update(
            member_count=members,
            last_refreshed_at=now,
            last_refresh_ms=ms,
            next_refresh_at=_next_refresh(locked, now),
            refresh_state=state,
            updated_at=timezone.now(),
        )
        if entered or left:
            _queue_sync(tenant, locked.pk)
    if locked.type == SegmentType.DYNAMIC:
        profile_changes_prune(tenant=tenant)
    return RefreshResult(members, entered, left, ms, incremental, checked)


_PRUNE_SQL = f'DELETE FROM "{P}" WHERE tenant_id = %s AND xid < %s'  # noqa: S608


def profile_changes_prune(*, tenant: Tenant) -> int | None:
    """Delete the rows of the ``ProfileChange`` log that no incremental refresh can need:
    those written by transactions older than every dynamic segment's last snapshot (its
    ``xmin``; an incremental refresh reads only ``xid >= xmin`` of its base) and older than
    every transaction still running (a refresh that starts later takes a snapshot whose
    ``xmin`` is at least that). The tenant's dynamic segments are locked (``NOWAIT``) while
    the horizon is read, so no refresh is between taking its snapshot and saving it; when
    one is, nothing is pruned (``None``): that refresh prunes after itself. Called after
    each refresh of a dynamic segment and nightly (retention step ``profile_changes``)."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                states = list(
                    Segment.objects.for_tenant(tenant)
                    .filter(type=SegmentType.DYNAMIC)
                    .select_for_update(nowait=True)
                    .values_list("refresh_state", flat=True)
                )
        except OperationalError:  # a refresh of the tenant is running
            return None
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            horizon = min(
                [cursor.fetchone()[0], *(s["xmin"] for s in states if s and s.get("xmin"))]
            )
    with connection.cursor() as cursor:
        cursor.execute(_PRUNE_SQL, [tenant.pk, horizon])
        return cursor.rowcount


def profile_changes_retention(*, now: datetime, deadline: float) -> tuple[int, bool]:
    """Nightly (``crm.retention``): prune every tenant's ``ProfileChange`` log, also of the
    tenants whose segments are not refreshed (their log would otherwise only grow)."""
    pruned, finished = 0, True
    for tenant in Tenant.objects.order_by("pk"):
        if time.monotonic() > deadline:
            return pruned, False
        deleted = profile_changes_prune(tenant=tenant)
        if deleted is None:
            finished = False
        else:
            pruned += deleted
    return pruned, finished


def segments_refresh_due(*, now: datetime | None = None, limit: int = 100) -> int:
    """Beat: queue a refresh of every dynamic segment whose time has come."""
    refresh_segment = tenant_task("marketing.refresh_segment")
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            Segment.objects.select_for_update(skip_locked=True)
            .filter(type=SegmentType.DYNAMIC, next_refresh_at__lte=now)
            .exclude(refresh_frequency=RefreshFrequency.MANUAL)
            .select_related("tenant")
            .order_by("next_refresh_at")[:limit]
        )
        for segment in due:
            # Pushed ahead now, so the next sweep does not queue it again meanwhile.
            segment.next_refresh_at = _next_refresh(segment, now)
            segment.save(update_fields=["next_refresh_at"])
            refresh_segment.enqueue(segment.tenant, segment_id=str(segment.pk))
    return len(due)


# ----------------------------------------------------------------------------- static members


def _require_static(segment: Segment) -> None:
    if segment.type != SegmentType.STATIC:
        raise SegmentConflict("A dynamic segment's members come from its rules.")


def _record(segment: Segment, customer_ids: Sequence[Any], kind: str, now: datetime) -> None:
    SegmentChange.objects.bulk_create(
        SegmentChange(tenant=segment.tenant, segment=segment, customer_id=cid, kind=kind)
        for cid in customer_ids
    )


def segment_members_add(*, segment: Segment, customer_ids: Sequence[Any]) -> int:
    """Add the tenant's customers to a static segment; returns how many were new."""
    _require_static(segment)
    tenant = segment.tenant
    wanted = set(
        customer_base(tenant).filter(pk__in=list(customer_ids)).values_list("pk", flat=True)
    )
    unknown = {str(c) for c in customer_ids} - {str(c) for c in wanted}
    if unknown:
        raise ValidationError(
            {"customer_ids": [f"Unknown customers: {', '.join(sorted(unknown)[:10])}."]}
        )
    with transaction.atomic():
        now = timezone.now()
        with connection.cursor() as cursor:
            cursor.execute(
                f"""INSERT INTO "{M}" (tenant_id, segment_id, customer_id, created_at, updated_at)
                SELECT %s, %s, c, %s, %s FROM unnest(%s::uuid[]) AS c
                ON CONFLICT (tenant_id, segment_id, customer_id) DO NOTHING
                RETURNING customer_id""",  # noqa: S608
                [tenant.pk, segment.pk, now, now, list(wanted)],
            )
            added = [row[0] for row in cursor.fetchall()]
        _record(segment, added, ChangeKind.ENTERED, now)
        _recount(segment)
        if added:
            _queue_sync(tenant, segment.pk)
    return len(added)


def segment_members_remove(*, segment: Segment, customer_ids: Sequence[Any]) -> int:
    _require_static(segment)
    with transaction.atomic():
        now = timezone.now()
        gone = list(
            SegmentMembership.objects.filter(
                tenant=segment.tenant, segment=segment, customer_id__in=list(customer_ids)
            ).values_list("customer_id", flat=True)
        )
        SegmentMembership.objects.filter(
            tenant=segment.tenant, segment=segment, customer_id__in=gone
        ).delete()
        _record(segment, gone, ChangeKind.LEFT, now)
        _recount(segment)
        if gone:
            _queue_sync(segment.tenant, segment.pk)
    return len(gone)


def _recount(segment: Segment) -> None:
    count = SegmentMembership.objects.filter(tenant=segment.tenant, segment=segment).count()
    Segment.objects.filter(pk=segment.pk).update(member_count=count, updated_at=timezone.now())
    segment.member_count = count


@dataclass
class ImportResult:
    rows: int = 0
    matched: int = 0
    added: int = 0
    unmatched: int = 0
    error_csv: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)


CSV_COLUMNS = ("id", "email", "phone")
# A cell starting with one of these is run as a formula by spreadsheets (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str) -> str:
    """A cell of a CSV we hand back (the unmatched rows), made inert for spreadsheets: a
    leading formula character gets a ``'`` in front, which spreadsheets read as "text"."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def segment_import_csv(*, segment: Segment, text: str) -> ImportResult:
    """Add the people of a CSV (columns ``id``, ``email`` and/or ``phone``; the first given
    one of a row is used) to a static segment. Rows that match nobody come back as an error
    file: the row as it was plus an ``error`` column."""
    _require_static(segment)
    tenant = segment.tenant
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    rows: list[tuple[dict[str, str], str, str]] = []  # (row, kind, normalised value)
    result = ImportResult()
    failures: list[tuple[dict[str, str], str]] = []
    try:  # csv.Error: a cell over the csv module's field limit (128 KiB), a stray NUL...
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        if not set(header) & set(CSV_COLUMNS):
            raise ValidationError({"file": ["The CSV needs an id, email or phone column."]})
        reader.fieldnames = header
        for row in reader:
            result.rows += 1
            if result.rows > MAX_CSV_ROWS:
                raise ValidationError({"file": [f"At most {MAX_CSV_ROWS:,} rows per file."]})
            kind, value, error = _csv_key(row, tenant)
            if error:
                failures.append((row, error))
            else:
                rows.append((row, kind, value))
    except csv.Error as exc:
        raise ValidationError(
            {"file": [f"Line {reader.line_num + 1}: not a CSV this import can read ({exc})."]}
        ) from exc
    ids = {value for _, kind, value in rows if kind == "id"}
    known_ids = {
        str(pk) for pk in customer_base(tenant).filter(pk__in=ids).values_list("pk", flat=True)
    }
    pairs = [(kind, value) for _, kind, value in rows if kind != "id"]
    owners: dict[tuple[str, str], str] = {}
    if pairs:
        aliases = IdentityAlias.objects.for_tenant(tenant).filter(
            kind__in={k for k, _ in pairs},
            value__in={v for _, v in pairs},
            profile__status__in=[ProfileStatus.ACTIVE, ProfileStatus.INACTIVE],
        )
        owners = {
            (a.kind, a.value): str(a.profile_id)
            for a in aliases.only("kind", "value", "profile_id")
        }
    matched: set[str] = set()
    for row, kind, value in rows:
        customer = value if kind == "id" and value in known_ids else owners.get((kind, value))
        if customer:
            matched.add(customer)
        else:
            failures.append((row, f"No customer with this {kind if kind != 'id' else 'id'}."))
    result.matched = len(matched)
    result.added = (
        segment_members_add(segment=segment, customer_ids=sorted(matched)) if matched else 0
    )
    result.unmatched = len(failures)
    if failures:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([*map(csv_cell, header), "error"])
        for row, error in failures:
            writer.writerow([*(csv_cell(row.get(name) or "") for name in header), error])
        result.error_csv = out.getvalue()
        result.errors = [{**row, "error": error} for row, error in failures[:100]]
    return result


MAX_CSV_BYTES = 10 * 1024 * 1024


def csv_upload_text(upload) -> str:
    """The text of an uploaded CSV (segment imports, journey enrollment): at most 10 MB,
    UTF-8 (with or without a byte-order mark); otherwise a field error on ``file``."""
    if upload.size > MAX_CSV_BYTES:
        raise ValidationError({"file": ["At most 10 MB."]})
    try:
        return upload.read().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError({"file": ["Save the CSV as UTF-8."]}) from exc


def segment_import_upload(*, segment: Segment, upload) -> ImportResult:
    """``segment_import_csv`` for an uploaded file (API and admin)."""
    text = csv_upload_text(upload)
    with transaction.atomic():
        return segment_import_csv(segment=segment, text=text)


def _csv_key(row: dict[str, str], tenant: Tenant) -> tuple[str, str, str]:
    ident, email, phone = (_uncell(row.get(name) or "") for name in ("id", "email", "phone"))
    try:
        if ident:
            return "id", str(UUID(ident)), ""
        if email:
            return AliasKind.EMAIL, normalize_email(email), ""
        if phone:
            return AliasKind.PHONE, normalize_phone(phone, region=tenant.default_phone_region), ""
    except (ValueError, ValidationError):
        return "", "", "Not a valid id, email or phone."
    return "", "", "The row has no id, email or phone."


def _uncell(value: str) -> str:
    """A corrected error file comes back with ``csv_cell``'s quote: read past it."""
    value = value.strip()
    if value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        return value[1:].strip()
    return value


def memberships_of(tenant: Tenant, customer_ids: Iterable[Any]) -> QuerySet[SegmentMembership]:
    """The memberships of these customers (merge, erasure, subject access, the customer
    page). No index of the membership is keyed by customer (each would cost every refresh
    one more index entry per member): they are looked up segment by segment, one probe of
    the primary key ``(tenant, segment, customer)`` per segment of the tenant and customer
    (a nested loop over the tenant's segments; a tenant has tens to hundreds)."""
    return SegmentMembership.objects.filter(
        tenant=tenant,
        segment_id__in=Segment.objects.for_tenant(tenant).values("pk"),
        customer_id__in=list(customer_ids),
    )


def move_memberships(*, tenant: Tenant, winner: CustomerProfile, loser: CustomerProfile) -> int:
    """Merge hook: the loser's segment memberships and history become the winner's (a
    segment both were in keeps the winner's row). Each segment the loser was in is pushed
    to Messaging again: its member list changed."""
    losers = memberships_of(tenant, [loser.pk])
    touched = set(losers.values_list("segment_id", flat=True))
    for segment_id in touched:
        _queue_sync(tenant, segment_id)
    both = memberships_of(tenant, [winner.pk]).values("segment_id")
    losers.filter(segment_id__in=both).delete()
    moved = losers.update(customer=winner)
    SegmentChange.objects.filter(tenant=tenant, customer=loser).update(customer=winner)
    return moved


def move_messages(*, tenant: Tenant, winner: CustomerProfile, loser: CustomerProfile) -> int:
    """Merge hook: the loser's campaign messages and interactions become the winner's, so the
    frequency cap, stats per person and scores see them. A message is unique per run, person
    and channel: where both got the same run on the same channel, the winner's row is kept and
    the loser's stays on the merged profile (it was a real send to the loser's address; the
    campaign's stats still count it). Every interaction moves, also those of such a row:
    they are what the person did."""
    clash = Message.objects.filter(
        tenant=tenant,
        customer=winner,
        run_id=OuterRef("run_id"),
        channel=OuterRef("channel"),
    )
    moved = (
        Message.objects.filter(tenant=tenant, customer=loser)
        .exclude(Exists(clash))
        .update(customer=winner)
    )
    moved += Interaction.objects.filter(tenant=tenant, customer=loser).update(customer=winner)
    return moved


def erase_marketing(*, tenant: Tenant, customer: CustomerProfile, addresses: dict) -> int:
    """Erase hook: suppression stubs for every address (so nobody re-subscribes them), then
    memberships, segment history, interactions go, and messages lose their addresses."""
    Suppression.objects.bulk_create(
        [
            Suppression(
                tenant=tenant, channel=channel, address=address, reason="erased", source="erasure"
            )
            for channel, values in addresses.items()
            for address in values
        ],
        ignore_conflicts=True,
    )
    touched = memberships_of(tenant, [customer.pk]).delete()[0]
    touched += SegmentChange.objects.filter(tenant=tenant, customer=customer).delete()[0]
    touched += Interaction.objects.filter(tenant=tenant, customer=customer).delete()[0]
    touched += Message.objects.filter(tenant=tenant, customer=customer).update(
        address="", provider_id="", error=""
    )
    return touched


# ----------------------------------------------------------------------------- subject access

EXPORT_CHUNK = 2000


def export_memberships(*, tenant: Tenant, customer, people, viewer):
    """Export section: the segments the person is in, and since when."""
    rows = memberships_of(tenant, people)
    return (
        rows.order_by("created_at", "segment_id")
        .values("segment__name", "created_at")
        .iterator(chunk_size=EXPORT_CHUNK)
    )


def export_segment_changes(*, tenant: Tenant, customer, people, viewer):
    """Export section: when the person entered or left a segment."""
    rows = SegmentChange.objects.filter(tenant=tenant, customer_id__in=people)
    return (
        rows.order_by("-created_at", "-id")
        .values("created_at", "segment__name", "kind")
        .iterator(chunk_size=EXPORT_CHUNK)
    )


def export_profile_changes(*, tenant: Tenant, customer, people, viewer):
    """Export section: bookkeeping for segment refreshes, the number of the last database
    transaction that changed the profile (no other data)."""
    rows = ProfileChange.objects.filter(tenant=tenant, customer_id__in=people)
    latest = rows.order_by("customer_id", "-xid").distinct("customer_id")
    return latest.values("xid").iterator(chunk_size=EXPORT_CHUNK)


def export_messages(*, tenant: Tenant, customer, people, viewer):
    """Export section: every message prepared for the person (campaign or journey)."""
    rows = Message.objects.filter(tenant=tenant, customer_id__in=people)
    return (
        rows.order_by("-created_at", "-id")
        .values(
            "created_at",
            "campaign__name",
            "template__name",
            "channel",
            "address",
            "status",
            "skip_reason",
            "sent_at",
        )
        .iterator(chunk_size=EXPORT_CHUNK)
    )


def export_interactions(*, tenant: Tenant, customer, people, viewer):
    """Export section: opens, clicks, bounces, unsubscribes and complaints."""
    rows = Interaction.objects.filter(tenant=tenant, customer_id__in=people)
    return (
        rows.order_by("-occurred_at", "-id")
        .values("occurred_at", "kind", "source", "campaign__name", "metadata")
        .iterator(chunk_size=EXPORT_CHUNK)
    )
