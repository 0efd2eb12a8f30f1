"""Type handlers of the event pipeline and the profile activity metrics, set-wise.

Each handler receives every event of its type in a batch. Events are first folded per
profile in time order, so several events about one person in one batch act like the same
events one by one. Each change is guarded by the time of the stored fact: an event older
than what the profile already knows does not overwrite it (consent per channel, membership,
handicap), and the last activity only moves forward.

Inside a batch (``profile_changes``) the handlers and the metrics do not write: the batch's
profiles are locked once, in id order, reading the facts the guards compare with; each
handler decides in memory against them; then one ``UPDATE ... FROM unnest(...)`` writes
every profile of the batch once, with only the columns that change. A profile row has about
fourteen indexes, so each extra row version (one per handler, then one for the metrics, as
it was) cost more than all the rest of the batch's statements; a profile whose data did not
change keeps its ``updated_at``, and with the table's free space (``fillfactor``) its metrics
update stays a HOT update. A handler called outside a batch opens its own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import connection
from psycopg.types.json import Jsonb

from crm.db import batch_cursor, planner_off

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


# ----------------------------------------------------------------------------- one batch

# The stored facts the guards compare with, read when the batch's profiles are locked.
_GUARD_COLUMNS = (
    "membership_updated_at",
    "handicap_updated_at",
    *(f"{channel}_consent_at" for channel in CONSENT_CHANNELS),
    "last_activity_at",
)
# PostgreSQL types of the columns a batch may write (arrays of them go in the UPDATE).
_COLUMN_TYPES = {
    "membership_type": "text",
    "membership_status": "text",
    "membership_joined_on": "date",
    "membership_renewal_on": "date",
    "first_name": "text",
    "last_name": "text",
    "date_of_birth": "date",
    "lifecycle_stage": "text",
    "membership_updated_at": "timestamptz",
    "handicap_index": "numeric",
    "handicap_updated_at": "timestamptz",
    **{
        f"{channel}_{suffix}": pg_type
        for channel in CONSENT_CHANNELS
        for suffix, pg_type in (
            ("opt_in", "boolean"),
            ("consent_at", "timestamptz"),
            ("consent_source", "text"),
        )
    },
    "last_activity_at": "timestamptz",
    "last_activity_type": "text",
}


@dataclass
class ProfileChanges:
    """The changes of one batch's profiles, decided in memory and written in one UPDATE.

    ``stored`` holds each locked profile's guard columns as committed; ``changes`` the new
    value of each column a handler set (a column no handler set keeps its value: no handler
    ever sets a NULL); ``touched`` the profiles whose data changed (their ``updated_at``
    moves); ``value_added`` the amounts added to the lifetime value; ``counted`` the
    profiles whose 30-day count is recounted; ``consents`` the consent history rows of the
    decisions applied: ``(profile id, channel, opt-in, source, time, evidence)``."""

    stored: dict[Any, dict[str, Any]]
    changes: dict[Any, dict[str, Any]] = field(default_factory=lambda: defaultdict(dict))
    touched: set[Any] = field(default_factory=set)
    value_added: dict[Any, int] = field(default_factory=lambda: defaultdict(int))
    counted: set[Any] = field(default_factory=set)
    consents: list[tuple[Any, str, bool, str, datetime, Jsonb]] = field(default_factory=list)

    def current(self, profile_id: Any, column: str) -> Any:
        """The value the profile has now, this batch's changes included."""
        changed = self.changes.get(profile_id, {})
        return changed[column] if column in changed else self.stored[profile_id][column]

    def set(self, profile_id: Any, values: dict[str, Any], *, touch: bool = True) -> None:
        self.changes[profile_id].update(values)
        if touch:
            self.touched.add(profile_id)


_batch: ContextVar[ProfileChanges | None] = ContextVar("profile_changes", default=None)


def profiles_lock(
    tenant: Tenant, profile_ids: Iterable[Any], *, skip_locked: bool = False
) -> dict[Any, dict[str, Any]]:
    """Lock the batch's profiles in id order, so two batches touching the same people wait
    for each other instead of deadlocking, and read the facts the guards compare with (no
    one else can change them until the commit). ``NO KEY UPDATE`` is the lock an UPDATE
    takes anyway; unlike ``FOR UPDATE`` it does not block other batches' activity inserts
    (their foreign-key checks take ``KEY SHARE``). A profile that is gone is not returned;
    with ``skip_locked``, neither is one another transaction holds (it is not waited for)."""
    ids = sorted(set(profile_ids), key=str)
    if not ids:
        return {}
    with batch_cursor() as cursor:
        cursor.execute(
            f'SELECT id, {", ".join(_GUARD_COLUMNS)} FROM "{PROFILE}" '  # noqa: S608
            "WHERE tenant_id = %s AND id = ANY(%s::uuid[]) ORDER BY id FOR NO KEY UPDATE"
            + (" SKIP LOCKED" if skip_locked else ""),
            [tenant.pk, ids],
        )
        return {row[0]: dict(zip(_GUARD_COLUMNS, row[1:], strict=True)) for row in cursor}


def profile_guards(row: dict[str, Any]) -> dict[str, Any]:
    """The guard facts of a profile as written by this transaction (one it has just created,
    which no other transaction sees until the commit; ``row``: its columns by attribute
    name), in the form ``profiles_lock`` reads."""
    return {column: row[column] for column in _GUARD_COLUMNS}


@contextmanager
def profile_changes(
    tenant: Tenant,
    items: list[Item],
    now: datetime,
    *,
    locked: dict[Any, dict[str, Any]] | None = None,
) -> Iterator[ProfileChanges]:
    """The handlers and metrics run inside collect their changes; when the block ends
    without an error, they are written: one UPDATE for the profiles, one INSERT for the
    consent history. Nested: the outer batch collects (a handler called on its own opens
    its batch, writes it, closes it). ``locked``: profiles this transaction has locked
    already, with their guard facts (``profiles_lock``): they are not read again."""
    outer = _batch.get()
    if outer is not None:
        yield outer
        return
    locked = locked or {}
    wanted = {item.profile_id for item in items}
    stored = {pid: locked[pid] for pid in wanted if pid in locked}
    if rest := wanted - stored.keys():
        stored.update(profiles_lock(tenant, rest))
    batch = ProfileChanges(stored)
    token = _batch.set(batch)
    try:
        yield batch
    finally:
        _batch.reset(token)
    _write(tenant, batch, now)


# The rolling window ends at the caller's clock (two parameters, both ``now``), never at
# PostgreSQL's clock: one clock for Python and SQL (docs/architecture.md). The third
# parameter is NOT_ENGAGEMENT_TYPES.
_COUNT_30D = (
    f'(SELECT count(*) FROM "{ACTIVITY}" a WHERE a.tenant_id = p.tenant_id '  # noqa: S608
    f"AND a.customer_id = p.id AND a.occurred_at > %s::timestamptz - interval '{ROLLING_WINDOW}' "
    "AND a.occurred_at <= %s::timestamptz AND a.type <> ALL(%s::text[]))"
)


def _write(tenant: Tenant, batch: ProfileChanges, now: datetime) -> None:
    """Every changed profile of the batch in one ``UPDATE ... FROM unnest(...)``, with only
    the columns some profile of the batch changes."""
    ids = sorted(
        {*batch.changes, *batch.touched, *batch.value_added, *batch.counted} & set(batch.stored),
        key=str,
    )
    if ids:
        columns = sorted({column for values in batch.changes.values() for column in values})
        names = ", ".join(["id", *columns, "touched", "value_added", "counted"])
        types = ["uuid", *(_COLUMN_TYPES[column] for column in columns), "boolean", "bigint"]
        arrays = ", ".join(f"%s::{pg_type}[]" for pg_type in [*types, "boolean"])
        assignments = [f"{column} = COALESCE(v.{column}, p.{column})" for column in columns]
        params: list[Any] = []
        if batch.value_added:
            assignments.append("lifetime_value_minor = p.lifetime_value_minor + v.value_added")
        if batch.touched:
            assignments.append("updated_at = CASE WHEN v.touched THEN %s ELSE p.updated_at END")
            params.append(now)
        if batch.counted:
            assignments.append(
                f"activity_count_30d = CASE WHEN v.counted THEN {_COUNT_30D} "
                "ELSE p.activity_count_30d END"
            )
            params += [now, now, list(NOT_ENGAGEMENT_TYPES)]
        sql = (
            f'UPDATE "{PROFILE}" p SET {", ".join(assignments)} '  # noqa: S608
            f"FROM unnest({arrays}) AS v({names}) "
            "WHERE p.tenant_id = %s AND p.id = v.id"
        )
        values = [batch.changes.get(pid, {}) for pid in ids]
        params += [
            ids,
            *([row.get(column) for row in values] for column in columns),
            [pid in batch.touched for pid in ids],
            [batch.value_added.get(pid, 0) for pid in ids],
            [pid in batch.counted for pid in ids],
            tenant.pk,
        ]
        with batch_cursor() as cursor:
            cursor.execute(sql, params)
    if batch.consents:
        # Through the batch cursor (binary arrays bound by the server): the ORM's bulk_create
        # quoted every element into the SQL text, several times PostgreSQL's own work.
        with batch_cursor() as cursor:
            cursor.execute(
                _CONSENT_SQL,
                [tenant.pk, now, now, *map(list, zip(*batch.consents, strict=True))],
            )


_CONSENT_SQL = f"""
    INSERT INTO "{ConsentRecord._meta.db_table}"
        (tenant_id, customer_id, channel, opt_in, source, occurred_at, evidence, created_at,
         updated_at)
    SELECT %s, c.customer_id, c.channel, c.opt_in, c.source, c.occurred_at, c.evidence, %s, %s
    FROM unnest(%s::uuid[], %s::text[], %s::boolean[], %s::text[], %s::timestamptz[],
                %s::jsonb[])
        WITH ORDINALITY AS c(customer_id, channel, opt_in, source, occurred_at, evidence, n)
    ORDER BY c.n
"""  # noqa: S608


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
    with profile_changes(tenant, items, now) as batch:
        for profile_id, (at, values) in folded.items():
            if profile_id not in batch.stored:
                continue
            known = batch.current(profile_id, "membership_updated_at")
            if known is not None and known > at:
                continue  # an older event than the membership data we have
            status = str(values.get("membership_status", "")).upper() or None
            if status:
                values["membership_status"] = status
                if status in STAGE_BY_STATUS:
                    values["lifecycle_stage"] = str(STAGE_BY_STATUS[status])
            batch.set(profile_id, {**values, "membership_updated_at": at})


# ----------------------------------------------------------------------------- golf


def handle_handicap(tenant: Tenant, items: list[Item], now: datetime) -> None:
    latest: dict[Any, Item] = {}
    for item in _in_time_order(items):
        latest[item.profile_id] = item
    with profile_changes(tenant, items, now) as batch:
        for profile_id, item in latest.items():
            if profile_id not in batch.stored:
                continue
            known = batch.current(profile_id, "handicap_updated_at")
            if known is not None and known >= item.entry.occurred_at:
                continue
            batch.set(
                profile_id,
                {
                    "handicap_index": Decimal(item.entry.payload["handicapIndex"]),
                    "handicap_updated_at": item.entry.occurred_at,
                },
            )


# ----------------------------------------------------------------------------- commerce


def minor_units(amount: str | Decimal, currency: str) -> int:
    exponent = 0 if currency in ZERO_DECIMAL_CURRENCIES else 2
    return int((Decimal(amount) * (10**exponent)).to_integral_value())


def handle_payment(tenant: Tenant, items: list[Item], now: datetime) -> None:
    """Adds paid amounts in the tenant's currency to the lifetime value (kept in minor
    units); a payment in another currency is on the timeline but not summed."""
    with profile_changes(tenant, items, now) as batch:
        for item in items:
            payload = item.entry.payload
            if payload["currency"] == tenant.currency and item.profile_id in batch.stored:
                batch.value_added[item.profile_id] += minor_units(
                    payload["amount"], payload["currency"]
                )
                batch.touched.add(item.profile_id)


# ----------------------------------------------------------------------------- consent


def handle_consent(tenant: Tenant, items: list[Item], now: datetime) -> None:
    """Per channel: the opt-in or opt-out, stamped with the event's time and source. An event
    older than the stored decision does not overwrite it; at the same time, opt-out wins.
    Each decision applied is written to the consent history."""
    with profile_changes(tenant, items, now) as batch:
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
            for profile_id, (at, opt_in, source, event_id) in decided.items():
                if profile_id not in batch.stored:
                    continue
                known = batch.current(profile_id, f"{channel}_consent_at")
                if known is not None and not (known < at or (known == at and not opt_in)):
                    continue  # an older decision than the stored one (or a tie it loses)
                batch.set(
                    profile_id,
                    {
                        f"{channel}_opt_in": opt_in,
                        f"{channel}_consent_at": at,
                        f"{channel}_consent_source": source[:64],
                    },
                )
                batch.consents.append(
                    (profile_id, channel, opt_in, source[:64], at, Jsonb({"event_id": event_id}))
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


def apply_handlers(tenant: Tenant, items: list[Item], now: datetime) -> None:
    if not items:
        return
    by_handler: dict[Callable, list[Item]] = defaultdict(list)
    for item in items:
        handler = HANDLERS.get(item.entry.type)
        if handler is not None:
            by_handler[handler].append(item)
    with profile_changes(tenant, items, now):
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


def update_activity_metrics(tenant: Tenant, items: list[Item], now: datetime) -> None:
    """Last activity (forward only) and the rolling 30-day count of the batch's people
    (their engagement: see ``NOT_ENGAGEMENT_TYPES``). Metrics are not profile data: they
    do not move ``updated_at``."""
    latest: dict[Any, Item] = {}
    for item in _in_time_order(items):
        if is_engagement(item.entry.type):
            latest[item.profile_id] = item
    if not latest:
        return
    with profile_changes(tenant, items, now) as batch:
        for profile_id, item in latest.items():
            if profile_id not in batch.stored:
                continue
            batch.counted.add(profile_id)
            known = batch.current(profile_id, "last_activity_at")
            if known is None or known < item.entry.occurred_at:
                batch.set(
                    profile_id,
                    {
                        "last_activity_at": item.entry.occurred_at,
                        "last_activity_type": item.entry.type,
                    },
                    touch=False,
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
    right. Counts engagement only, like ``metrics_touch``.

    Planned without nested loops, and ``counts`` MATERIALIZED (computed once, then joined):
    right after a bulk load (an import writes the tenant's profiles and recounts in the same
    transaction), the statistics still describe the table before it, so the tenant's
    profiles are estimated at a handful. A nested loop then rescanned the inlined counts once
    per profile (14.3 s, 10M buffer hits, for 58,789 imported profiles and 21 with a recent
    activity), or joined the profiles with themselves row by row (20,000 profiles: over 5 s,
    ``test_the_recount_after_a_bulk_load_on_stale_statistics_counts_once``). With hash joins
    it is linear whatever the estimates: 0.2 s for the import's 58,789."""
    sql = f"""
        WITH counts AS MATERIALIZED (
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
    with planner_off("enable_nestloop") as cursor:
        cursor.execute(sql, [tenant.pk, now, now, list(NOT_ENGAGEMENT_TYPES), tenant.pk, tenant.pk])
        return cursor.rowcount
