"""The event pipeline: ingestion into the sync log, batched processing, failures, replay.

Ingestion (``events_ingest``) validates each event, writes the valid ones to the sync log in
one ``INSERT ... ON CONFLICT DO NOTHING`` (a replayed event is a duplicate, not a second row)
and queues their processing when the transaction commits. Nothing is queued that is not in
the sync log first, so a lost broker message loses no event: the sweep
(``events_requeue_stale``) queues it again.

Processing (``events_process``) takes a batch of sync-log rows in one transaction: it locks
the rows still pending (``FOR UPDATE SKIP LOCKED``, so two deliveries of the same batch never
both apply it), resolves every person of the batch with one alias query, creates the people
nobody knows in bulk, inserts the activities in one statement, runs each type's handler
set-wise (``customers.handlers``), moves the profile metrics, and marks the rows processed.
Then, after commit, the processed events go to the subscribers registered in ``crm``.
A batch does not wait for another worker's transaction over the same person: it defers
those events (``_NEW_PERSON_LOCK_SQL``, ``_busy_profiles``) and queues them again.

A batch that fails on bad data is retried event by event, each in its own transaction: the
poison event gets its error and a later attempt (``MAX_ATTEMPTS`` in all, then ``FAILED``),
the others are processed. Database outages propagate, so the task retries with backoff.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import DataError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from psycopg.types.json import Jsonb

from crm.db import batch_cursor
from crm.models import Tenant
from crm.registry import ProcessedEvent, publish_events
from crm.tasks import tenant_task

from .events import Envelope, EventInvalid, event_type, parse_envelope, safe_text
from .handlers import (
    apply_handlers,
    profile_changes,
    profile_guards,
    profiles_lock,
    update_activity_metrics,
)
from .identity import IdentityHints
from .models import Activity, CustomerProfile, IdentityAlias, SyncLogEntry, SyncStatus
from .services import identity_resolve, profile_fields_from_hints

logger = logging.getLogger(__name__)

MAX_EVENTS_PER_REQUEST = 1_000
BATCH_SIZE = 500  # events per processing task (and per transaction)
MAX_ATTEMPTS = 5
STALE_AFTER = timedelta(minutes=5)  # a queued row not processed by then is queued again
DATABASE_ERRORS = (OperationalError, InterfaceError)


# ----------------------------------------------------------------------------- ingestion


@dataclass
class Rejection:
    index: int
    id: str | None
    errors: dict[str, list[str]]


@dataclass
class IngestResult:
    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    entry_ids: list[int] = field(default_factory=list)


def _raw_id(raw: Any) -> str | None:
    if isinstance(raw, dict) and isinstance(raw.get("id"), str | int):
        # Escaped: an id PostgreSQL cannot store is echoed back, and must render as JSON.
        return safe_text(str(raw["id"]))[:200]
    return None


def events_validate(
    *, tenant: Tenant, raw_events: Sequence[Any], now: datetime
) -> tuple[list[tuple[int, Envelope]], list[Rejection]]:
    """Each event judged on its own, against one clock (``now``) for the whole batch."""
    valid: list[tuple[int, Envelope]] = []
    rejected: list[Rejection] = []
    for index, raw in enumerate(raw_events):
        try:
            envelope = parse_envelope(
                raw,
                tenant_slug=tenant.slug,
                tenant_id=str(tenant.pk),
                phone_region=tenant.default_phone_region,
                now=now,
            )
        except EventInvalid as exc:
            rejected.append(Rejection(index, _raw_id(raw), exc.message_dict))
        else:
            valid.append((index, envelope))
    return valid, rejected


# The batch travels as one JSON document (an array of ``[source, id, type, occurred at,
# identity, payload]``) that PostgreSQL parses once: built by ``json.dumps`` in C, bound as one
# string. Six arrays of 1,000 elements, quoted element by element by psycopg's Python
# dumpers, were 11% of the REST side's CPU (docs/profiles/events-end-to-end.md).
_INSERT_SQL = f"""
    INSERT INTO "{SyncLogEntry._meta.db_table}"
        (tenant_id, source, event_id, type, occurred_at, identity, payload, via, status,
         attempts, error, queued_at, created_at, updated_at)
    SELECT %s, e.item->>0, e.item->>1, e.item->>2, (e.item->>3)::timestamptz,
           e.item->4, e.item->5, %s, 'PENDING', 0, '', %s, %s, %s
    FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS e(item, n)
    ORDER BY e.n
    ON CONFLICT (tenant_id, source, event_id) DO NOTHING
    RETURNING id, source, event_id
"""  # noqa: S608

# A NUL character in a string, as ``json.dumps`` writes it: ``\u0000`` after an even number
# of backslashes (``\\u0000`` is a backslash followed by the text "u0000", which is storable).
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _batch_document(envelopes: Sequence[Envelope]) -> str:
    """The batch as the INSERT's JSON document. Raises ``DataError`` for a NUL character,
    which PostgreSQL's jsonb refuses with a message that does not name it."""
    document = json.dumps(
        [
            [e.source, e.id, e.type, e.occurred_at.isoformat(), e.identity, e.payload]
            for e in envelopes
        ]
    )
    if "\\u0000" in document and _ESCAPED_NUL.search(document):
        raise DataError("A text value contains a NUL character (0x00), which cannot be stored.")
    return document


def _insert_entries(
    tenant: Tenant, envelopes: Sequence[Envelope], via: str, now: datetime
) -> dict[tuple[str, str], int]:
    """Sync-log rows for ``envelopes``; returns ``{(source, event id): row id}`` of the rows
    that are new (the others were already there)."""
    if not envelopes:
        return {}
    document = _batch_document(envelopes)
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_SQL, [tenant.pk, via, now, now, now, document])
        return {(source, event_id): pk for pk, source, event_id in cursor.fetchall()}


def events_ingest(
    *, tenant: Tenant, raw_events: Sequence[Any], via: str = "api", now: datetime | None = None
) -> IngestResult:
    """Validate events and write the valid ones to the sync log; their processing is queued
    once the caller's transaction commits. Idempotent: a replayed event is a duplicate.
    ``now`` (default: the current time) is the one clock of the batch: what an event may not
    be dated after (plus ``MAX_FUTURE_SKEW``) and the rows' times."""
    now = now or timezone.now()
    valid, rejected = events_validate(tenant=tenant, raw_events=raw_events, now=now)
    result = IngestResult(rejected=rejected)
    # The same event twice in one request: the second is a duplicate.
    unique: dict[tuple[str, str], Envelope] = {}
    order: list[tuple[int, tuple[str, str], bool]] = []
    for index, envelope in valid:
        key = (envelope.source, envelope.id)
        order.append((index, key, key in unique))
        unique.setdefault(key, envelope)
    with transaction.atomic():
        inserted, refused = _insert_or_isolate(tenant, list(unique.values()), via, now)
        for index, key, repeated in order:
            if key in refused:
                result.rejected.append(Rejection(index, key[1], {"event": [refused[key]]}))
            elif key in inserted and not repeated:
                result.accepted.append(key[1])
            else:
                result.duplicates.append(key[1])
        result.rejected.sort(key=lambda rejection: rejection.index)
        result.entry_ids = sorted(inserted.values())
        if result.entry_ids:
            ids = result.entry_ids
            transaction.on_commit(lambda: _queue(tenant, ids))
    return result


def _insert_or_isolate(
    tenant: Tenant, envelopes: Sequence[Envelope], via: str, now: datetime
) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], str]]:
    """The batch in one INSERT. Should PostgreSQL still refuse a value that validation let
    through (``DataError``), each event is tried alone in its own savepoint, so only the
    events it refuses are rejected (returned with the reason) and the batch goes in."""
    try:
        with transaction.atomic():
            return _insert_entries(tenant, envelopes, via, now), {}
    except DataError as exc:
        logger.warning("a batch of %s events was refused (%s); one by one", len(envelopes), exc)
    inserted: dict[tuple[str, str], int] = {}
    refused: dict[tuple[str, str], str] = {}
    for envelope in envelopes:
        try:
            with transaction.atomic():
                inserted.update(_insert_entries(tenant, [envelope], via, now))
        except DataError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            refused[(envelope.source, envelope.id)] = f"The database refused this event: {reason}"
    return inserted, refused


def _queue(tenant: Tenant, entry_ids: Sequence[int]) -> None:
    """Queue processing tasks. The rows are already committed, so a broker outage loses
    nothing: it is logged, and the sweep queues the rows once they are stale."""
    for start in range(0, len(entry_ids), BATCH_SIZE):
        batch = list(entry_ids[start : start + BATCH_SIZE])
        try:
            tenant_task("customers.process_events").delay(str(tenant.pk), batch)
        except Exception:
            logger.exception(
                "broker unavailable: %s events of %s wait for the sweep", len(batch), tenant.slug
            )


# ----------------------------------------------------------------------------- processing


@dataclass
class Item:
    """One sync-log row being processed."""

    entry: Entry
    hints: IdentityHints | None
    profile_id: Any = None
    is_new_profile: bool = False
    activity_new: bool = False
    # The row of the profile this batch created for the item's person, as written (its
    # columns by attribute name: ``_create_people``).
    created: dict[str, Any] | None = None


@dataclass
class ProcessResult:
    processed: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0
    deferred: int = 0


@dataclass(slots=True)
class Entry:
    """The columns of a sync-log row the processing reads (no model instance needed)."""

    pk: int
    source: str
    event_id: str
    type: str
    occurred_at: datetime
    identity: dict[str, Any]
    payload: dict[str, Any]


# How the batch statements test that a row is still pending: an expression no index on
# ``status`` can serve, so PostgreSQL finds the batch's rows by id (the primary key). With a
# plain ``status = 'PENDING'``, statistics taken while nothing was pending make the status
# index look free, and each batch then walked every pending row of the tenant: a backlog
# of 100,000 events made every batch cost in proportion to the backlog, not to its rows.
IS_PENDING = "status || '' = 'PENDING'"

_CLAIM_SQL = f"""
    SELECT id, source, event_id, type, occurred_at, identity, payload
    FROM "{SyncLogEntry._meta.db_table}"
    WHERE tenant_id = %s AND id = ANY(%s) AND {IS_PENDING}
    ORDER BY id
    FOR UPDATE SKIP LOCKED
"""  # noqa: S608


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _claim(tenant: Tenant, entry_ids: Sequence[int]) -> list[Entry]:
    """Lock the rows still pending; rows processed or locked by another worker are skipped."""
    with batch_cursor() as cursor:
        cursor.execute(_CLAIM_SQL, [tenant.pk, list(entry_ids)])
        return [
            Entry(pk, source, event_id, type_, at, _json(identity), _json(payload))
            for pk, source, event_id, type_, at, identity, payload in cursor.fetchall()
        ]


_COUNT_SQL = f"""
    UPDATE "{SyncLogEntry._meta.db_table}" SET attempts = attempts + 1
    WHERE tenant_id = %s AND id = ANY(%s) AND {IS_PENDING}
"""  # noqa: S608

_COUNT_FRESH_SQL = f"""
    UPDATE "{SyncLogEntry._meta.db_table}" SET attempts = 1
    WHERE tenant_id = %s AND id = ANY(%s) AND {IS_PENDING} AND attempts = 0
    RETURNING id
"""  # noqa: S608

_ATTEMPTS_SQL = f"""
    SELECT id, attempts FROM "{SyncLogEntry._meta.db_table}"
    WHERE tenant_id = %s AND id = ANY(%s) AND {IS_PENDING}
"""  # noqa: S608


def _count_attempt(tenant: Tenant, entry_ids: Sequence[int]) -> None:
    """Count an attempt in its own commit, before the work: a worker that dies during the
    work cannot take the count with it."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_COUNT_SQL, [tenant.pk, list(entry_ids)])


def _count_first_attempt(tenant: Tenant, entry_ids: Sequence[int]) -> set[int]:
    """Count the first attempt of the rows never tried, in one statement committed on its
    own (autocommit: one round trip; before the work, like ``_count_attempt``); returns
    their ids. The rows tried before are left to the row-by-row path."""
    with batch_cursor() as cursor:
        cursor.execute(_COUNT_FRESH_SQL, [tenant.pk, list(entry_ids)])
        return {pk for (pk,) in cursor.fetchall()}


def _give_up(tenant: Tenant, entry_ids: Sequence[int]) -> int:
    return (
        SyncLogEntry.objects.for_tenant(tenant)
        .filter(pk__in=list(entry_ids), status=SyncStatus.PENDING)
        .update(
            status=SyncStatus.FAILED,
            next_attempt_at=None,
            queued_at=None,
            error=f"Gave up after {MAX_ATTEMPTS} attempts that did not finish "
            "(the worker died while processing it, or it kept failing).",
        )
    )


def events_process(
    *,
    tenant: Tenant,
    entry_ids: Sequence[int],
    now: datetime | None = None,
    defer: bool = True,
) -> ProcessResult:
    """Process pending sync-log rows (see the module docstring). Safe to call again with the
    same ids: rows already processed, or being processed elsewhere, are skipped.

    With ``defer``, a batch does not wait for another worker's transaction that is creating
    the same new person: those events are handed back (pending, their attempt uncounted)
    and queued again after the commit, with ``defer`` off (``_NEW_PERSON_LOCK_SQL``).

    Attempts are counted before the work, in their own commit. Rows never tried are
    counted in one statement and go as one batch; rows tried before (they failed, or a
    worker died on them) go row by row, each counted just before its own try, so only the
    row that kills the worker uses up its attempts, and it is FAILED once they are spent."""
    now = now or timezone.now()
    result = ProcessResult()
    fresh = _count_first_attempt(tenant, entry_ids)
    tried = [pk for pk in dict.fromkeys(entry_ids) if pk not in fresh]
    if tried:
        with connection.cursor() as cursor:
            cursor.execute(_ATTEMPTS_SQL, [tenant.pk, tried])
            attempts = dict(cursor.fetchall())
        result.skipped = len(tried) - len(attempts)
        spent = [pk for pk, count in attempts.items() if count >= MAX_ATTEMPTS]
        if spent:
            result.failed += _give_up(tenant, spent)
        tried = [pk for pk in tried if pk in attempts and attempts[pk] < MAX_ATTEMPTS]
    if fresh:
        _process_batch(tenant, sorted(fresh), result, now, defer=defer)
    for entry_id in tried:
        _process_alone(tenant, entry_id, result, now, count=True)
    return result


def _process_batch(
    tenant: Tenant, entry_ids: list[int], result: ProcessResult, now: datetime, *, defer: bool
) -> None:
    """Rows whose attempt is counted, as one batch; on bad data, one by one."""
    try:
        processed, deferred = _apply_claimed(tenant, entry_ids, now, defer=defer)
        result.processed += processed
        result.deferred += deferred
        result.skipped += len(entry_ids) - processed - deferred
        return
    except DATABASE_ERRORS:
        raise
    except Exception:
        logger.warning("batch of %s events failed; retrying one by one", len(entry_ids))
    for entry_id in entry_ids:
        _process_alone(tenant, entry_id, result, now, count=False)


def _apply_claimed(
    tenant: Tenant, entry_ids: Sequence[int], now: datetime, *, defer: bool = False
) -> tuple[int, int]:
    """In one transaction: lock the rows still pending, apply them, hand them to the
    subscribers once committed. Returns how many were applied and how many deferred (handed
    back pending and queued again after the commit: see ``_NEW_PERSON_LOCK_SQL``)."""
    with transaction.atomic():
        entries = _claim(tenant, entry_ids)
        published, deferred = _apply(tenant, entries, now, defer=defer)
        if deferred:
            _hand_back(tenant, deferred, now)
            transaction.on_commit(lambda: _queue_deferred(tenant, deferred))
        transaction.on_commit(lambda: publish_events(tenant=tenant, events=published))
    return len(entries) - len(deferred), len(deferred)


_HAND_BACK_SQL = f"""
    UPDATE "{SyncLogEntry._meta.db_table}" SET attempts = attempts - 1, queued_at = %s
    WHERE tenant_id = %s AND id = ANY(%s) AND {IS_PENDING} AND attempts > 0
"""  # noqa: S608


def _hand_back(tenant: Tenant, entry_ids: list[int], now: datetime) -> None:
    """Deferred rows (locked by this transaction's claim) stay pending, their attempt
    uncounted (they were not tried), queued now: should their message be lost, the sweep
    queues them again once stale."""
    with batch_cursor() as cursor:
        cursor.execute(_HAND_BACK_SQL, [now, tenant.pk, entry_ids])


def _queue_deferred(tenant: Tenant, entry_ids: Sequence[int]) -> None:
    """Queue deferred rows again, at the end of the queue, with ``defer`` off: the second
    time they wait for the other transaction like any row, so a row is deferred at most
    once and nothing can be handed back and forth."""
    try:
        tenant_task("customers.process_events").delay(str(tenant.pk), list(entry_ids), defer=False)
    except Exception:
        logger.exception(
            "broker unavailable: %s deferred events of %s wait for the sweep",
            len(entry_ids),
            tenant.slug,
        )


def _process_alone(
    tenant: Tenant, entry_id: int, result: ProcessResult, now: datetime, *, count: bool
) -> ProcessResult:
    if count:
        _count_attempt(tenant, [entry_id])
    try:
        if _apply_claimed(tenant, [entry_id], now)[0]:
            result.processed += 1
        else:
            result.skipped += 1
    except DATABASE_ERRORS:
        raise
    except Exception as exc:
        logger.exception("event %s failed", entry_id)
        if _record_failure(tenant, entry_id, exc, now) == SyncStatus.FAILED:
            result.failed += 1
        else:
            result.retrying += 1
    return result


def _record_failure(tenant: Tenant, entry_id: int, exc: Exception, now: datetime) -> str:
    """Keep the error; back off (1, 2, 4, 8 minutes) and finally mark it FAILED. (The
    attempt was counted before it started.)"""
    with transaction.atomic():
        entry = (
            SyncLogEntry.objects.for_tenant(tenant)
            .select_for_update()
            .filter(pk=entry_id, status=SyncStatus.PENDING)
            .first()
        )
        if entry is None:
            return SyncStatus.PROCESSED
        entry.error = f"{type(exc).__name__}: {exc}"[:2000]
        if entry.attempts >= MAX_ATTEMPTS:
            entry.status = SyncStatus.FAILED
            entry.next_attempt_at = None
        else:
            entry.next_attempt_at = now + timedelta(minutes=2 ** (max(entry.attempts, 1) - 1))
        entry.queued_at = None
        entry.save(update_fields=["error", "status", "next_attempt_at", "queued_at"])
        return entry.status


def _apply(
    tenant: Tenant, entries: list[Entry], now: datetime, *, defer: bool = False
) -> tuple[list[ProcessedEvent], list[int]]:
    """Apply the claimed rows; returns what to publish and the ids of the rows deferred."""
    if not entries:
        return [], []
    items = [
        Item(entry, IdentityHints(**entry.identity) if entry.identity else None)
        for entry in entries
    ]
    people = [item for item in items if item.hints is not None]
    deferred = _resolve(tenant, people, now, defer=defer)
    locked: dict[Any, dict[str, Any]] = {}
    if defer:
        waiting = {id(item) for item in deferred}
        busy, locked = _busy_profiles(tenant, [item for item in people if id(item) not in waiting])
        deferred += busy
    # The people this batch created are unseen by other transactions until the commit: there
    # is nothing to lock, and their guard facts are the values just written.
    locked |= {
        item.profile_id: profile_guards(item.created) for item in people if item.created is not None
    }
    if deferred:
        held = {item.entry.pk for item in deferred}
        items = [item for item in items if item.entry.pk not in held]
        people = [item for item in people if item.entry.pk not in held]
    _insert_activities(tenant, people, now)
    _mark_processed(tenant, items, now)
    # Profile updates last: their row locks are held only until the commit that follows
    # (a deferring batch took them already, above, without waiting). One UPDATE writes what
    # the handlers and the metrics decided (one row version each).
    fresh = [item for item in people if item.activity_new]
    if fresh:
        with profile_changes(tenant, fresh, now, locked=locked):
            apply_handlers(tenant, fresh, now)
            update_activity_metrics(tenant, fresh, now)
    published = [
        ProcessedEvent(
            event_id=item.entry.event_id,
            type=item.entry.type,
            source=item.entry.source,
            occurred_at=item.entry.occurred_at,
            payload=item.entry.payload,
            profile_id=item.profile_id,
            is_new_profile=item.is_new_profile,
        )
        for item in items
    ]
    return published, sorted(item.entry.pk for item in deferred)


# A deferring batch locks the known people's profiles right after resolving them, without
# waiting (``SKIP LOCKED``): a profile locked by another batch (until its commit) defers its
# events, as for the new people above, instead of waiting at the batch's end. The lock is the
# one ``customers.handlers`` takes before the profile UPDATE (``NO KEY UPDATE``, which the
# activity inserts' foreign-key checks do not conflict with), taken earlier: held from here
# to the commit, and the guard facts it reads are handed to the profile update, which then
# reads and locks only the profiles neither locked here nor created by the batch (people
# resolved one by one, and every profile of a batch that does not defer). A profile that is
# gone is not returned either: its events are deferred once, then go as before.
def _busy_profiles(
    tenant: Tenant, items: list[Item]
) -> tuple[list[Item], dict[Any, dict[str, Any]]]:
    """Lock the profiles of ``items`` not created by this batch that no one else holds;
    returns the items whose profile another transaction holds, and the profiles locked
    (with their guard facts: ``customers.handlers.profiles_lock``)."""
    known = {item.profile_id for item in items if not item.is_new_profile}
    locked = profiles_lock(tenant, known, skip_locked=True)
    busy = [item for item in items if not item.is_new_profile and item.profile_id not in locked]
    return busy, locked


# ----------------------------------------------------------------------------- identity


_ALIAS_SQL = f"""
    SELECT a.kind, a.value, a.profile_id
    FROM "{IdentityAlias._meta.db_table}" a
    JOIN unnest(%s::text[], %s::text[]) AS h(kind, value)
      ON a.kind = h.kind AND a.value = h.value
    WHERE a.tenant_id = %s
"""  # noqa: S608


def _known_aliases(tenant: Tenant, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    # In the unique key's order: the join probes the key once per pair, in the array's order,
    # and probes in key order find the index's upper pages (and neighbouring leaves) still in
    # the CPU's caches, where probes in a random order miss them.
    pairs = sorted(set(pairs))
    if not pairs:
        return {}
    with batch_cursor() as cursor:
        cursor.execute(
            _ALIAS_SQL, [[kind for kind, _ in pairs], [value for _, value in pairs], tenant.pk]
        )
        return {(kind, value): profile_id for kind, value, profile_id in cursor.fetchall()}


def _pairs(hints: IdentityHints) -> list[tuple[str, str]]:
    return [(kind, value) for _, kind, value in hints.pairs()]


def _resolve(tenant: Tenant, items: list[Item], now: datetime, *, defer: bool) -> list[Item]:
    """Set ``profile_id`` on every item: one alias query for the batch; people nobody knows
    are created in bulk; anything unusual (a new identifier for a known person, hints that
    point at two people) goes through ``identity_resolve`` one by one. With ``defer``, the
    new people another transaction is creating at this moment are left out: their items are
    returned, unresolved."""
    if not items:
        return []
    known = _known_aliases(tenant, (pair for item in items for pair in _pairs(item.hints)))
    unknown: list[Item] = []
    unusual: list[Item] = []
    for item in items:
        pairs = _pairs(item.hints)
        owners = {known[pair] for pair in pairs if pair in known}
        if not owners:
            unknown.append(item)
        elif len(owners) == 1 and all(pair in known for pair in pairs):
            item.profile_id = owners.pop()
        else:
            unusual.append(item)
    deferred: list[Item] = []
    if unknown:
        retry, deferred = _create_people(tenant, unknown, now, defer=defer)
        unusual += retry
    for item in sorted(unusual, key=lambda i: i.entry.pk):
        resolution = identity_resolve(
            tenant=tenant, hints=item.hints, source=f"event:{item.entry.source}"
        )
        item.profile_id = resolution.profile.pk
        item.is_new_profile = resolution.is_new
    return deferred


def _groups(items: list[Item]) -> list[list[Item]]:
    """Items that share an identifier are the same new person (union-find on identifiers)."""
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_seen: dict[tuple[str, str], int] = {}
    for index, item in enumerate(items):
        for pair in _pairs(item.hints):
            if pair in first_seen:
                parent[find(index)] = find(first_seen[pair])
            else:
                first_seen[pair] = index
    groups: dict[int, list[Item]] = defaultdict(list)
    for index, item in enumerate(items):
        groups[find(index)].append(item)
    return list(groups.values())


_NEW_ALIAS_SQL = f"""
    INSERT INTO "{IdentityAlias._meta.db_table}"
        (tenant_id, kind, value, profile_id, source, created_at, updated_at)
    SELECT %s, a.kind, a.value, a.profile_id, a.source, %s, %s
    FROM unnest(%s::text[], %s::text[], %s::uuid[], %s::text[])
        AS a(kind, value, profile_id, source)
    ON CONFLICT (tenant_id, kind, value) DO NOTHING
    RETURNING profile_id
"""  # noqa: S608


_PROFILE_FIELDS = CustomerProfile._meta.concrete_fields
_PROFILE_COPY = (
    f'COPY "{CustomerProfile._meta.db_table}" '
    f"({', '.join(f.column for f in _PROFILE_FIELDS)}) FROM STDIN"
)
_PROFILE_JSON = frozenset(
    f.attname for f in _PROFILE_FIELDS if f.get_internal_type() == "JSONField"
)
# A new profile's row starts from the model's defaults, worked out once: the constant ones as
# they are, the callable ones (the id's uuid4, the JSON's dict, the tags' list) called per
# row. A model instance did the same in 38 µs a profile (``Model.__init__`` over some fifty
# fields), most of the Python of creating a batch's new people.
_PROFILE_CONSTANTS = {
    f.attname: f.get_default()
    for f in _PROFILE_FIELDS
    if not (f.has_default() and callable(f.default))
}
_PROFILE_FACTORIES = {
    f.attname: f.default for f in _PROFILE_FIELDS if f.has_default() and callable(f.default)
}


def _profile_row(values: dict[str, Any]) -> dict[str, Any]:
    """A new profile's columns (by attribute name): the defaults, then ``values``."""
    row = dict(_PROFILE_CONSTANTS)
    for name, factory in _PROFILE_FACTORIES.items():
        row[name] = factory()
    row.update(values)
    return row


def _copy_profiles(rows: list[dict[str, Any]], now: datetime) -> None:
    """Insert new profiles with COPY (in the current transaction): the ORM's INSERT compiler
    cost more than PostgreSQL's work for a batch of a few hundred wide rows."""
    connection.ensure_connection()
    with connection.connection.cursor() as cursor, cursor.copy(_PROFILE_COPY) as copy:
        for row in rows:
            row["created_at"] = row["updated_at"] = now
            copy.write_row(
                [
                    Jsonb(row[f.attname]) if f.attname in _PROFILE_JSON else row[f.attname]
                    for f in _PROFILE_FIELDS
                ]
            )


# A batch creating a new person first takes a transaction-level advisory lock per identifier
# of that person (tenant, kind, value), without waiting (``pg_try_advisory_xact_lock``). When
# another transaction holds one, it is creating the same person right now (two workers
# given the same person's events in two batches at once): waiting on the alias's unique key
# for its commit left a worker idle for most of a batch, the largest wait of the events end
# to end at 1M profiles. With ``defer``, the group's events are handed back and queued again
# instead, and the batch goes on without them; by their next try the other transaction has
# committed and they resolve to its person. Without ``defer`` the lock is still taken, but
# the batch does not look at the answer: the unique key decides, as before. The lock never
# decides who owns an identifier (the unique key does; ``identity_resolve`` and the imports
# do not take it): it only tells a batch that waiting would be long. Two keys (class, hash):
# a space apart from the one-key advisory locks the project takes elsewhere; a hash
# collision only defers a group once more than needed.
NEW_PERSON_LOCK_CLASS = 0x4E455750  # "NEWP"
_NEW_PERSON_LOCK_SQL = """
    SELECT h.kind, h.value
    FROM unnest(%s::text[], %s::text[]) AS h(kind, value)
    WHERE NOT pg_try_advisory_xact_lock(
        %s::int4, hashtext(%s::text || '/' || h.kind || '/' || h.value)
    )
"""


def _contended_pairs(tenant: Tenant, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Take the new-person lock of each identifier that is free; returns those another
    transaction holds."""
    pairs = sorted(set(pairs))
    with batch_cursor() as cursor:
        cursor.execute(
            _NEW_PERSON_LOCK_SQL,
            [[k for k, _ in pairs], [v for _, v in pairs], NEW_PERSON_LOCK_CLASS, str(tenant.pk)],
        )
        return {(kind, value) for kind, value in cursor.fetchall()}


def _create_people(
    tenant: Tenant, items: list[Item], now: datetime, *, defer: bool = False
) -> tuple[list[Item], list[Item]]:
    """One profile per group of new people, with their aliases, in bulk. A group one of
    whose identifiers another transaction claimed meanwhile is undone; its items are
    returned first, for ``identity_resolve`` (which finds the other transaction's person).
    With ``defer``, the groups another transaction is creating at this moment are left
    out; their items are returned second (see ``_NEW_PERSON_LOCK_SQL``)."""
    profiles: list[dict[str, Any]] = []
    aliases: list[tuple[str, str, Any, str]] = []
    expected: dict[Any, int] = {}
    members: dict[Any, list[Item]] = {}
    groups = _groups(items)
    contended = _contended_pairs(tenant, [p for item in items for p in _pairs(item.hints)])
    deferred: list[Item] = []
    if defer and contended:
        held = [g for g in groups if any(p in contended for i in g for p in _pairs(i.hints))]
        deferred = [item for group in held for item in group]
        groups = [g for g in groups if not any(g is h for h in held)]
        if not groups:
            return [], deferred
    for group in groups:
        group.sort(key=lambda i: (i.entry.occurred_at, i.entry.pk))
        values: dict[str, Any] = {}
        external: dict[str, str] = {}
        pairs: dict[tuple[str, str], str] = {}
        for item in group:  # the earliest event's value of each identifier wins
            fields = profile_fields_from_hints(item.hints)
            for system, ident in fields.pop("external_ids", {}).items():
                external.setdefault(system, ident)
            for name, value in fields.items():
                values.setdefault(name, value)
            for pair in _pairs(item.hints):
                pairs.setdefault(pair, f"event:{item.entry.source}")
        profile = _profile_row(
            {
                "tenant_id": tenant.pk,
                "currency": tenant.currency,
                "external_ids": external,
                **values,
            }
        )
        pk = profile["id"]
        profiles.append(profile)
        expected[pk] = len(pairs)
        members[pk] = group
        aliases += [(kind, value, pk, source) for (kind, value), source in pairs.items()]
    aliases.sort(key=lambda a: (a[0], a[1]))  # one insert order everywhere: no deadlocks
    # The aliases go first and only the groups that got all theirs get a profile: the alias
    # foreign key is checked at the commit, and a profile inserted and then deleted (as a
    # group another transaction beat used to be) costs its delete's foreign-key checks, a
    # search of every table that refers to profiles by customer (activities, consent, ...)
    # whose indexes lead with the tenant: a sequential scan of each (0.1 s at 1M profiles).
    with batch_cursor() as cursor:
        cursor.execute(
            _NEW_ALIAS_SQL,
            [
                tenant.pk,
                now,
                now,
                [a[0] for a in aliases],
                [a[1] for a in aliases],
                [a[2] for a in aliases],
                [a[3] for a in aliases],
            ],
        )
        inserted: dict[Any, int] = defaultdict(int)
        for (profile_id,) in cursor.fetchall():
            inserted[profile_id] += 1
        beaten = {pk for pk, count in expected.items() if inserted[pk] != count}
        if beaten:
            cursor.execute(
                f'DELETE FROM "{IdentityAlias._meta.db_table}" '  # noqa: S608
                "WHERE tenant_id = %s AND profile_id = ANY(%s)",
                [tenant.pk, sorted(beaten, key=str)],
            )
    created = {row["id"]: row for row in profiles if row["id"] not in beaten}
    _copy_profiles(list(created.values()), now)
    retry: list[Item] = []
    for profile_id, group in members.items():
        for item in group:
            if profile_id in created:
                item.profile_id, item.is_new_profile = profile_id, True
                item.created = created[profile_id]
            else:
                retry.append(item)
    return retry, deferred


# ----------------------------------------------------------------------------- activities


def activity_insert_sql(returning: str) -> str:
    """Activities from parallel arrays, idempotent per (tenant, source service, source event
    id). Parameters: the tenant, created/updated time, then the nine arrays. The demo data's
    (the pipeline's own, ``_ACTIVITY_SQL``, copies the event's columns from its sync-log
    row)."""
    return f"""
    INSERT INTO "{Activity._meta.db_table}"
        (tenant_id, customer_id, type, category, title, metadata, source_service, source_id,
         source_event_id, occurred_at, created_at, updated_at)
    SELECT %s, a.customer_id, a.type, a.category, a.title, a.metadata, a.source_service,
           a.source_id, a.source_event_id, a.occurred_at, %s, %s
    FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::jsonb[], %s::text[],
                %s::text[], %s::text[], %s::timestamptz[])
        AS a(customer_id, type, category, title, metadata, source_service, source_id,
             source_event_id, occurred_at)
    ON CONFLICT (tenant_id, source_service, source_event_id) DO NOTHING
    RETURNING {returning}
"""  # noqa: S608


# The pipeline's activities take what they copy from the event (type, payload, source, event
# id, time) from the batch's sync-log rows, locked by this transaction, rather than from
# arrays sent back: the payloads' JSON was the largest parameter of the batch (dumped by the
# worker, parsed again by PostgreSQL; about 3 ms of a batch of 500). ``s.id = ANY(...)``
# besides the join, as in ``_DONE_SQL``: the planner cannot see inside the unnest.
_ACTIVITY_SQL = f"""
    INSERT INTO "{Activity._meta.db_table}"
        (tenant_id, customer_id, type, category, title, metadata, source_service, source_id,
         source_event_id, occurred_at, created_at, updated_at)
    SELECT s.tenant_id, a.customer_id, s.type, a.category, a.title, s.payload, s.source,
           a.source_id, s.event_id, s.occurred_at, %s, %s
    FROM unnest(%s::bigint[], %s::uuid[], %s::text[], %s::text[], %s::text[])
        WITH ORDINALITY AS a(entry_id, customer_id, category, title, source_id, n)
    JOIN "{SyncLogEntry._meta.db_table}" s ON s.id = a.entry_id
    WHERE s.tenant_id = %s AND s.id = ANY(%s::bigint[])
    ORDER BY a.n
    ON CONFLICT (tenant_id, source_service, source_event_id) DO NOTHING
    RETURNING source_event_id
"""  # noqa: S608

SOURCE_ID_KEYS = ("bookingId", "roundId", "competitionId", "memberId", "id")


def _source_id(payload: dict) -> str:
    for key in SOURCE_ID_KEYS:
        if payload.get(key) not in (None, ""):
            return str(payload[key])[:128]
    return ""


def _insert_activities(tenant: Tenant, items: list[Item], now: datetime) -> None:
    """One activity per item (idempotent per source event); the columns copied from the
    event come from its sync-log row (``_ACTIVITY_SQL``)."""
    if not items:
        return
    entry_ids, profile_ids, categories, titles, source_ids = [], [], [], [], []
    for item in items:
        entry = item.entry
        spec = event_type(entry.type)
        entry_ids.append(entry.pk)
        profile_ids.append(item.profile_id)
        categories.append(spec.category)
        titles.append(spec.title(entry.payload)[:255])
        source_ids.append(_source_id(entry.payload))
    with batch_cursor() as cursor:
        arrays = [entry_ids, profile_ids, categories, titles, source_ids]
        cursor.execute(_ACTIVITY_SQL, [now, now, *arrays, tenant.pk, entry_ids])
        new = {row[0] for row in cursor.fetchall()}
    for item in items:
        item.activity_new = item.entry.event_id in new


# ``s.id = ANY(...)`` besides the join: without it the planner, which cannot see inside the
# unnest, hashed the whole tenant's sync log (a sequential scan that grew with the table).
_DONE_SQL = f"""
    UPDATE "{SyncLogEntry._meta.db_table}" s
    SET status = 'PROCESSED', processed_at = %s, updated_at = %s,
        error = '', next_attempt_at = NULL, profile_id = d.profile_id
    FROM unnest(%s::bigint[], %s::uuid[]) AS d(id, profile_id)
    WHERE s.id = d.id AND s.tenant_id = %s AND s.id = ANY(%s::bigint[])
"""  # noqa: S608


def _mark_processed(tenant: Tenant, items: list[Item], now: datetime) -> None:
    with batch_cursor() as cursor:
        cursor.execute(
            _DONE_SQL,
            [
                now,
                now,
                [item.entry.pk for item in items],
                [item.profile_id for item in items],
                tenant.pk,
                [item.entry.pk for item in items],
            ],
        )


# ----------------------------------------------------------------------------- sweep, replay


def events_requeue_stale(
    *, now: datetime | None = None, stale_after: timedelta = STALE_AFTER, limit: int = 50_000
) -> int:
    """Queue again the pending rows whose message was lost (queued long ago and still
    pending) and those whose retry time has come. Returns how many were queued."""
    now = now or timezone.now()
    with transaction.atomic():
        rows = list(
            SyncLogEntry.objects.select_for_update(skip_locked=True)
            .filter(status=SyncStatus.PENDING)
            .filter(_due(now, stale_after))
            .order_by("id")
            .values_list("id", "tenant_id")[:limit]
        )
        if not rows:
            return 0
        SyncLogEntry.objects.filter(id__in=[pk for pk, _ in rows]).update(queued_at=now)
        _queue_on_commit(rows)
    logger.info("re-queued %s pending events", len(rows))
    return len(rows)


def _due(now: datetime, stale_after: timedelta) -> Q:
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    lost = Q(queued_at__isnull=True) | Q(queued_at__lte=now - stale_after)
    return due & lost


def events_replay(
    *, tenant: Tenant | None = None, entry_ids: Sequence[int] | None = None, queryset=None
) -> int:
    """Put FAILED rows back to PENDING with fresh attempts and queue them. Processed rows
    are not touched (replaying them would apply nothing anyway)."""
    rows = queryset if queryset is not None else SyncLogEntry.objects.all()
    if tenant is not None:
        rows = rows.filter(tenant=tenant)
    if entry_ids is not None:
        rows = rows.filter(pk__in=list(entry_ids))
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            rows.filter(status=SyncStatus.FAILED)
            .select_for_update(skip_locked=True)
            .values_list("id", "tenant_id")
        )
        SyncLogEntry.objects.filter(id__in=[pk for pk, _ in ids]).update(
            status=SyncStatus.PENDING, attempts=0, error="", next_attempt_at=None, queued_at=now
        )
        _queue_on_commit(ids)
    return len(ids)


def _queue_on_commit(rows: Sequence[tuple[int, Any]]) -> None:
    """Queue ``(row id, tenant id)`` pairs, grouped by tenant, once the transaction commits."""
    by_tenant: dict[Any, list[int]] = defaultdict(list)
    for pk, tenant_id in rows:
        by_tenant[tenant_id].append(pk)
    tenants = {t.pk: t for t in Tenant.objects.filter(pk__in=by_tenant)}
    for tenant_id, ids in by_tenant.items():
        transaction.on_commit(lambda t=tenants[tenant_id], i=ids: _queue(t, i))


__all__ = [
    "BATCH_SIZE",
    "MAX_ATTEMPTS",
    "MAX_EVENTS_PER_REQUEST",
    "IngestResult",
    "ProcessResult",
    "Rejection",
    "events_ingest",
    "events_process",
    "events_replay",
    "events_requeue_stale",
    "events_validate",
]
