"""Type handlers of the event pipeline and the profile activity metrics, set-wise.

Each handler receives every event of its type in a batch and applies them with one
``UPDATE ... FROM unnest(...)`` per kind of change. Events are first folded per profile in
time order, so several events about one person in one batch act like the same events one by
one. Each change is guarded by the time of the stored fact: an event older than what the
profile already knows does not overwrite it (consent per channel, membership, handicap), and
the last activity only moves forward.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from django.db import connection

from .events import CONSENT_CHANNELS
from .models import Activity, ConsentRecord, CustomerProfile, LifecycleStage
from .timeline import NOTE_ACTIVITY

if TYPE_CHECKING:
    from crm.models import Tenant

    from .ingest import Item

PROFILE = CustomerProfile._meta.db_table
ACTIVITY = Activity._meta.db_table
ROLLING_WINDOW = "30 days"
# ISO 4217 currencies without minor units (the rest of ours have two decimals).
ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW", "ISK", "CLP", "VND", "UGX"})


def _update_profiles(
    tenant: Tenant,
    now: datetime,
    columns: list[tuple[str, str]],
    rows: list[tuple],
    set_sql: str,
    where_sql: str = "TRUE",
    touch: bool = True,
    returning: bool = False,
    set_params: Sequence[Any] = (),
) -> int | list[Any]:
    """``UPDATE profile p SET <set_sql> FROM unnest(<columns>) v WHERE p.id = v.id AND ...``;
    ``rows`` are ``(profile id, *values)`` with at most one row per profile. ``touch``
    moves ``updated_at`` (profile data changed); derived metrics do not, which keeps their
    update free of indexed columns, so PostgreSQL can make it a HOT update."""
    if not rows:
        return [] if returning else 0
    names = ", ".join(name for name, _ in columns)
    arrays = ", ".join(f"%s::{pg_type}[]" for _, pg_type in columns)
    touched = ", updated_at = %s" if touch else ""
    sql = (
        f'UPDATE "{PROFILE}" p SET {set_sql}{touched} '  # noqa: S608
        f"FROM unnest(%s::uuid[], {arrays}) AS v(id, {names}) "
        f"WHERE p.tenant_id = %s AND p.id = v.id AND ({where_sql})"
        + (" RETURNING p.id" if returning else "")
    )
    params = [list(column) for column in zip(*rows, strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*set_params, *([now] if touch else []), *params, tenant.pk])
        return [row[0] for row in cursor.fetchall()] if returning else cursor.rowcount


def _in_time_order(items: list[Item]) -> list[Item]:
    return sorted(items, key=lambda i: (i.entry.occurred_at, i.entry.pk))


# ----------------------------------------------------------------------------- membership

MEMBER_FIELDS = {
    "membershipType": ("membership_type", "text"),
    "membershipStatus": ("membership_status", "text"),
    "joinedOn": ("membership_joined_on", "date"),
    "renewalOn": ("membership_renewal_on", "date"),
    "firstName": ("first_name", "text"),
    "lastName": ("last_name", "text"),
    "dateOfBirth": ("date_of_birth", "date"),
}
DEFAULT_STATUS = {
    "scl.member.created": "ACTIVE",
    "scl.member.renewed": "ACTIVE",
    "scl.member.lapsed": "LAPSED",
}
STAGE_BY_STATUS = {"ACTIVE": LifecycleStage.MEMBER, "LAPSED": LifecycleStage.LAPSED}


def handle_member(tenant: Tenant, items: list[Item], now: datetime) -> None:
    """SCL member data: membership type, status, dates, names; the lifecycle stage follows
    the status (ACTIVE: member, LAPSED: lapsed)."""
    folded: dict[Any, tuple[Any, dict[str, Any]]] = {}
    for item in _in_time_order(items):
        payload = item.entry.payload
        _, values = folded.get(item.profile_id, (None, {}))
        for key, (column, _) in MEMBER_FIELDS.items():
            if payload.get(key) not in (None, ""):
                values[column] = payload[key]
        if "membershipStatus" not in payload and item.entry.type in DEFAULT_STATUS:
            values["membership_status"] = DEFAULT_STATUS[item.entry.type]
        folded[item.profile_id] = (item.entry.occurred_at, values)
    columns = [(column, pg_type) for column, pg_type in MEMBER_FIELDS.values()]
    rows = []
    for profile_id, (at, values) in folded.items():
        status = str(values.get("membership_status", "")).upper() or None
        stage = STAGE_BY_STATUS.get(status) if status else None
        if status:
            values["membership_status"] = status
        rows.append((profile_id, *(values.get(column) for column, _ in columns), stage, at))
    assignments = ", ".join(f"{column} = COALESCE(v.{column}, p.{column})" for column, _ in columns)
    _update_profiles(
        tenant,
        now,
        [*columns, ("stage", "text"), ("at", "timestamptz")],
        rows,
        f"{assignments}, lifecycle_stage = COALESCE(v.stage, p.lifecycle_stage), "
        "membership_updated_at = v.at",
        "p.membership_updated_at IS NULL OR p.membership_updated_at <= v.at",
    )


# ----------------------------------------------------------------------------- golf


def handle_handicap(tenant: Tenant, items: list[Item], now: datetime) -> None:
    latest: dict[Any, Item] = {}
    for item in _in_time_order(items):
        latest[item.profile_id] = item
    rows = [
        (pid, Decimal(item.entry.payload["handicapIndex"]), item.entry.occurred_at)
        for pid, item in latest.items()
    ]
    _update_profiles(
        tenant,
        now,
        [("hcp", "numeric"), ("at", "timestamptz")],
        rows,
        "handicap_index = v.hcp, handicap_updated_at = v.at",
        "p.handicap_updated_at IS NULL OR p.handicap_updated_at < v.at",
    )


# ----------------------------------------------------------------------------- commerce


def minor_units(amount: str | Decimal, currency: str) -> int:
    exponent = 0 if currency in ZERO_DECIMAL_CURRENCIES else 2
    return int((Decimal(amount) * (10**exponent)).to_integral_value())


def handle_payment(tenant: Tenant, items: list[Item], now: datetime) -> None:
    """Adds paid amounts in the tenant's currency to the lifetime value (kept in minor
    units); a payment in another currency is on the timeline but not summed."""
    totals: dict[Any, int] = defaultdict(int)
    for item in items:
        payload = item.entry.payload
        if payload["currency"] == tenant.currency:
            totals[item.profile_id] += minor_units(payload["amount"], payload["currency"])
    _update_profiles(
        tenant,
        now,
        [("amount", "bigint")],
        list(totals.items()),
        "lifetime_value_minor = p.lifetime_value_minor + v.amount",
    )


# ----------------------------------------------------------------------------- consent


def handle_consent(tenant: Tenant, items: list[Item], now: datetime) -> None:
    """Per channel: the opt-in or opt-out, stamped with the event's time and source. An event
    older than the stored decision does not overwrite it; at the same time, opt-out wins."""
    for channel in CONSENT_CHANNELS:
        key = f"{channel}OptIn"
        decided: dict[Any, tuple[Any, bool, str, str]] = {}
        for item in _in_time_order(items):
            payload = item.entry.payload
            if key not in payload:
                continue
            source = payload.get("source") or item.entry.source
            decision = (item.entry.occurred_at, bool(payload[key]), source, item.entry.event_id)
            previous = decided.get(item.profile_id)
            if previous and previous[0] == decision[0] and not previous[1]:
                continue  # same time: the opt-out stands
            decided[item.profile_id] = decision
        rows = [(pid, at, opt_in, source[:64]) for pid, (at, opt_in, source, _) in decided.items()]
        applied = cast(  # returning=True: the ids of the updated profiles
            list[Any],
            _update_profiles(
                tenant,
                now,
                [("at", "timestamptz"), ("opt_in", "boolean"), ("source", "text")],
                rows,
                f"{channel}_opt_in = v.opt_in, {channel}_consent_at = v.at, "
                f"{channel}_consent_source = v.source",
                f"p.{channel}_consent_at IS NULL OR p.{channel}_consent_at < v.at "
                f"OR (p.{channel}_consent_at = v.at AND NOT v.opt_in)",
                returning=True,
            ),
        )
        ConsentRecord.objects.bulk_create(
            ConsentRecord(
                tenant=tenant,
                customer_id=pid,
                channel=channel,
                opt_in=decided[pid][1],
                source=decided[pid][2][:64],
                occurred_at=decided[pid][0],
                evidence={"event_id": decided[pid][3]},
            )
            for pid in applied
        )


HANDLERS: dict[str, Callable[[Tenant, list[Item], datetime], None]] = {
    "scl.member.created": handle_member,
    "scl.member.updated": handle_member,
    "scl.member.renewed": handle_member,
    "scl.member.lapsed": handle_member,
    "teetime.handicap.updated": handle_handicap,
    "teetime.booking.paid": handle_payment,
    "contactPreference.updated": handle_consent,
}


def _lock_profiles(tenant: Tenant, profile_ids: list[Any]) -> None:
    """Lock the batch's profiles in id order, so two batches touching the same people wait
    for each other instead of deadlocking. ``NO KEY UPDATE`` is the lock an UPDATE takes
    anyway; unlike ``FOR UPDATE`` it does not block other batches' activity inserts (their
    foreign-key checks take ``KEY SHARE``)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT 1 FROM "{PROFILE}" WHERE tenant_id = %s AND id = ANY(%s) '  # noqa: S608
            "ORDER BY id FOR NO KEY UPDATE",
            [tenant.pk, sorted(set(profile_ids), key=str)],
        )


def apply_handlers(tenant: Tenant, items: list[Item], now: datetime) -> None:
    if not items:
        return
    _lock_profiles(tenant, [item.profile_id for item in items])
    by_handler: dict[Callable, list[Item]] = defaultdict(list)
    for item in items:
        handler = HANDLERS.get(item.entry.type)
        if handler is not None:
            by_handler[handler].append(item)
    for handler, group in by_handler.items():
        handler(tenant, group, now)


# ----------------------------------------------------------------------------- metrics

# The activity metrics measure the customer's engagement: what the person did (rounds,
# bookings, payments, competition entries, membership and consent changes, opened and
# clicked messages, any other event about them). Not engagement, so never counted nor
# "last activity": a staff note (someone at the club did something) and the receipts of a
# campaign message that the person did not act on or that end the engagement (delivered,
# bounced, unsubscribed, complained). The per-batch update and the nightly recompute share
# this list, so they always agree (docs/events.md).
RECEIPT_KINDS = ("delivered", "bounced", "unsubscribed", "complained")
NOT_ENGAGEMENT_TYPES: tuple[str, ...] = (
    NOTE_ACTIVITY,
    *(f"{channel}.{kind}" for channel in CONSENT_CHANNELS for kind in RECEIPT_KINDS),
)


def is_engagement(activity_type: str) -> bool:
    return activity_type not in NOT_ENGAGEMENT_TYPES


# The rolling window ends at the caller's clock (two parameters, both ``now``), never at
# PostgreSQL's clock: one clock for Python and SQL (docs/architecture.md). The third
# parameter is NOT_ENGAGEMENT_TYPES.
_COUNT_30D = (
    f'(SELECT count(*) FROM "{ACTIVITY}" a WHERE a.tenant_id = p.tenant_id '  # noqa: S608
    f"AND a.customer_id = p.id AND a.occurred_at > %s::timestamptz - interval '{ROLLING_WINDOW}' "
    "AND a.occurred_at <= %s::timestamptz AND a.type <> ALL(%s::text[]))"
)


def update_activity_metrics(tenant: Tenant, items: list[Item], now: datetime) -> None:
    """Last activity (forward only) and the rolling 30-day count of the batch's people
    (their engagement: see ``NOT_ENGAGEMENT_TYPES``)."""
    latest: dict[Any, Item] = {}
    for item in _in_time_order(items):
        if is_engagement(item.entry.type):
            latest[item.profile_id] = item
    metrics_touch(
        tenant,
        [(pid, item.entry.occurred_at, item.entry.type) for pid, item in latest.items()],
        now=now,
    )


def metrics_touch(tenant: Tenant, rows: list[tuple[Any, Any, str]], *, now: datetime) -> None:
    """``rows``: ``(profile id, activity time, activity type)``, at most one per profile.
    Rows of activities that are not engagement (``NOT_ENGAGEMENT_TYPES``) move nothing."""
    rows = [row for row in rows if is_engagement(row[2])]
    newer = "p.last_activity_at IS NULL OR p.last_activity_at < v.at"
    _update_profiles(
        tenant,
        now,
        [("at", "timestamptz"), ("type", "text")],
        rows,
        f"last_activity_type = CASE WHEN {newer} THEN v.type ELSE p.last_activity_type END, "
        f"last_activity_at = CASE WHEN {newer} THEN v.at ELSE p.last_activity_at END, "
        f"activity_count_30d = {_COUNT_30D}",
        touch=False,
        set_params=[now, now, list(NOT_ENGAGEMENT_TYPES)],
    )


def activity_count_recompute(*, tenant: Tenant, now: datetime) -> int:
    """The true rolling 30-day count of every profile of the tenant at ``now``, set-wise
    (nightly): people whose activities aged out go down, nobody is touched whose count is
    right. Counts engagement only, like ``metrics_touch``."""
    sql = f"""
        WITH counts AS (
            SELECT customer_id, count(*) AS n FROM "{ACTIVITY}"
            WHERE tenant_id = %s AND occurred_at > %s::timestamptz - interval '{ROLLING_WINDOW}'
              AND occurred_at <= %s::timestamptz AND type <> ALL(%s::text[])
            GROUP BY customer_id
        ), fixed AS (
            SELECT p2.id, COALESCE(c.n, 0) AS n
            FROM "{PROFILE}" p2 LEFT JOIN counts c ON c.customer_id = p2.id
            WHERE p2.tenant_id = %s AND (p2.activity_count_30d > 0 OR c.n IS NOT NULL)
              AND p2.activity_count_30d IS DISTINCT FROM COALESCE(c.n, 0)
        )
        UPDATE "{PROFILE}" p SET activity_count_30d = fixed.n
        FROM fixed WHERE p.id = fixed.id AND p.tenant_id = %s
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [tenant.pk, now, now, list(NOT_ENGAGEMENT_TYPES), tenant.pk, tenant.pk])
        return cursor.rowcount
