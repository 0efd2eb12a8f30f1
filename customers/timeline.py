"""The timeline (activities, keyset-paginated) and notes.

The timeline is ordered by ``(occurred_at, id)`` descending and paged with a keyset cursor
on that pair, served by the ``(tenant, customer, -occurred_at, -id)`` index: the first page
and the thousandth cost the same, however many activities a customer has.

Notes: a private note is visible only to its author (``author_ref``: ``user:<id>`` for
staff, the API credential for services); creating one adds a ``NOTE_ADDED`` activity; an
edit keeps the text before it (``NoteRevision``) with who and when.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from crm.db import hot_cursor
from crm.models import Tenant

from .events import Category
from .models import (
    LIVE_STATUSES,
    Activity,
    ConsentRecord,
    CustomerProfile,
    Note,
    NoteRevision,
    NoteType,
)
from .services import profile_lock_live

NOTE_ACTIVITY = "NOTE_ADDED"
MAX_PAGE_SIZE = 200


# ----------------------------------------------------------------------------- timeline


def encode_cursor(occurred_at: datetime, pk: int) -> str:
    raw = f"{occurred_at.isoformat()}|{pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, _, pk = base64.urlsafe_b64decode(padded.encode()).decode().partition("|")
        moment, row = datetime.fromisoformat(at), int(pk)
        # What PostgreSQL could not compare is refused here, not as a 500 from the query:
        # a naive or out-of-range moment, or an id outside bigint.
        if moment.tzinfo is None or not 0 < row < 2**63:
            raise ValueError("not a cursor this API made")
        return moment.astimezone(UTC), row
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationError({"cursor": ["Invalid cursor."]}) from exc


@dataclass
class TimelinePage:
    activities: list[Activity]
    next_cursor: str | None


def _timeline_rows(
    *,
    tenant: Tenant,
    customer_id: Any,
    categories: Sequence[str] = (),
    types: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    page_size: int = 50,
) -> QuerySet[Activity]:
    """The query of one page plus one row (which says whether there is a next page)."""
    rows: QuerySet[Activity] = Activity.objects.for_tenant(tenant).filter(customer_id=customer_id)
    if categories:
        rows = rows.filter(category__in=list(categories))
    if types:
        rows = rows.filter(type__in=list(types))
    if since:
        rows = rows.filter(occurred_at__gte=since)
    if until:
        rows = rows.filter(occurred_at__lt=until)
    if cursor:
        at, pk = decode_cursor(cursor)
        # (occurred_at, id) < (at, pk), written so the index bounds occurred_at.
        rows = rows.filter(Q(occurred_at__lte=at) & (Q(occurred_at__lt=at) | Q(id__lt=pk)))
    return rows.order_by("-occurred_at", "-id")[: page_size + 1]


def timeline_page(
    *,
    tenant: Tenant,
    customer: CustomerProfile,
    categories: Sequence[str] = (),
    types: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    page_size: int = 50,
) -> TimelinePage:
    """One page of a customer's activities, newest first."""
    page = list(
        _timeline_rows(
            tenant=tenant,
            customer_id=customer.pk,
            categories=categories,
            types=types,
            since=since,
            until=until,
            cursor=cursor,
            page_size=page_size,
        )
    )
    next_cursor = None
    if len(page) > page_size:
        page = page[:page_size]
        next_cursor = encode_cursor(page[-1].occurred_at, page[-1].pk)
    return TimelinePage(page, next_cursor)


# What the API shows of an activity, in its order (customers.api.serializers.ActivitySerializer).
TIMELINE_FIELDS = (
    "id",
    "type",
    "category",
    "title",
    "metadata",
    "source_service",
    "source_id",
    "source_event_id",
    "occurred_at",
)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@dataclass
class TimelineRows:
    """A page as plain rows (``TIMELINE_FIELDS`` tuples), for the API's hot path."""

    rows: list[tuple]
    next_cursor: str | None


# The statement of each shape of timeline query (which filters are given, how many values
# each list has, the page size), compiled by the ORM once per process: building and compiling
# the two querysets cost about ten times the query's execution (some 1.5 ms of CPU against
# 0.15 ms in PostgreSQL, at 1M profiles). Its parameters are then put in the order
# ``_timeline_params`` gives, which is checked against the ORM's own parameters on the first
# compile of each shape: a shape whose check fails is stored as None and compiled on every
# call, as before, so a change in the ORM's output can cost speed, never correctness.
_TIMELINE_SQL: dict[tuple, str | None] = {}
_TIMELINE_SQL_MAX = 256


def _timeline_params(
    *,
    tenant: Tenant,
    customer_id: uuid.UUID,
    categories: Sequence[str],
    types: Sequence[str],
    since: datetime | None,
    until: datetime | None,
    position: tuple[datetime, int] | None,
) -> list[Any]:
    """The parameters of ``timeline_rows_of_live_customer``'s statement, in the ORM's order:
    the live profile (tenant, statuses, id), then the page (tenant, customer, its filters)."""
    params: list[Any] = [tenant.pk, *LIVE_STATUSES, customer_id, tenant.pk, customer_id]
    params += [*categories, *types]
    if since:
        params.append(since)
    if until:
        params.append(until)
    if position:
        params += [position[0], position[0], position[1]]
    return params


def timeline_rows_of_live_customer(
    *,
    tenant: Tenant,
    customer_id: Any,
    categories: Sequence[str] = (),
    types: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    page_size: int = 50,
) -> TimelineRows | None:
    """The page ``timeline_page`` gives, in one query that also checks the customer: None
    when ``customer_id`` is not a live customer of ``tenant`` (merged, erased, deleted,
    another tenant's, or not an id at all), exactly the profiles ``customer_live`` hides.

    One round trip instead of two: the live-profile check is the outer side of a LEFT JOIN
    to the page (served by ``activity_timeline_idx``), so a live customer without
    activities still answers one row, of NULLs.
    """
    try:
        pk = customer_id if isinstance(customer_id, uuid.UUID) else uuid.UUID(str(customer_id))
    except ValueError:  # not a UUID: no such customer
        return None
    # The ORM's IN lookups drop repeated values; so does the shape.
    categories, types = list(dict.fromkeys(categories)), list(dict.fromkeys(types))
    position = decode_cursor(cursor) if cursor else None
    shape = (len(categories), len(types), bool(since), bool(until), bool(position), page_size)
    params = _timeline_params(
        tenant=tenant,
        customer_id=pk,
        categories=categories,
        types=types,
        since=since,
        until=until,
        position=position,
    )
    sql = _TIMELINE_SQL.get(shape)
    if sql is None:
        sql, orm_params = _timeline_sql(
            tenant=tenant,
            customer_id=pk,
            categories=categories,
            types=types,
            since=since,
            until=until,
            cursor=cursor,
            page_size=page_size,
        )
        if shape not in _TIMELINE_SQL:
            if len(_TIMELINE_SQL) >= _TIMELINE_SQL_MAX:
                _TIMELINE_SQL.clear()
            _TIMELINE_SQL[shape] = sql if orm_params == params else None
        params = orm_params
    # Prepared once per connection (crm.db.hot_cursor), as the statement is compiled once.
    with hot_cursor() as db:
        db.execute(sql, params)
        fetched = db.fetchall()
    if not fetched:
        return None
    # jsonb comes back as text on Django's connections (JSONField decodes it; no decoder set).
    rows = [
        (row[1], row[2], row[3], row[4], _json(row[5]), *row[6:])
        for row in fetched
        if row[1] is not None
    ]
    next_cursor = None
    if len(rows) > page_size:
        rows = rows[:page_size]
        next_cursor = encode_cursor(rows[-1][8], rows[-1][0])
    return TimelineRows(rows, next_cursor)


def _timeline_sql(
    *,
    tenant: Tenant,
    customer_id: uuid.UUID,
    categories: Sequence[str],
    types: Sequence[str],
    since: datetime | None,
    until: datetime | None,
    cursor: str | None,
    page_size: int,
) -> tuple[str, list[Any]]:
    """The statement of ``timeline_rows_of_live_customer`` and its parameters, from the ORM."""
    live = (
        CustomerProfile.objects.for_tenant(tenant)
        .live()
        .filter(pk=customer_id)
        .order_by()
        .values_list("pk")
    )
    live_sql, live_params = live.query.sql_with_params()
    page = _timeline_rows(
        tenant=tenant,
        customer_id=customer_id,
        categories=categories,
        types=types,
        since=since,
        until=until,
        cursor=cursor,
        page_size=page_size,
    ).values_list(*TIMELINE_FIELDS)
    compiler = page.query.get_compiler(using=page.db)
    page_sql, page_params = compiler.as_sql()
    columns = ", ".join(f"page.col{i}" for i in range(len(TIMELINE_FIELDS)))
    sql = (
        f"SELECT live.pk IS NOT NULL, {columns} FROM ({live_sql}) live(pk) "  # noqa: S608
        f"LEFT JOIN ({page_sql}) page({', '.join(f'col{i}' for i in range(len(TIMELINE_FIELDS)))})"
        " ON TRUE ORDER BY page.col8 DESC, page.col0 DESC"
    )
    return sql, [*live_params, *page_params]


# ----------------------------------------------------------------------------- notes


@dataclass(frozen=True)
class Author:
    """Who writes: ``ref`` identifies them for private notes, ``name`` is shown."""

    ref: str
    name: str

    @classmethod
    def staff(cls, user: Any) -> Author:
        return cls(f"user:{user.pk}", user.get_username())

    @classmethod
    def api(cls, principal: Any) -> Author:
        return cls(principal.credential_id, str(principal))


def note_visible(*, tenant: Tenant, viewer: Author) -> QuerySet[Note]:
    """Notes the viewer may see: not deleted, and public or their own."""
    return (
        Note.objects.for_tenant(tenant)
        .filter(deleted_at__isnull=True, customer__in=CustomerProfile.objects.live())
        .filter(Q(is_private=False) | Q(author_ref=viewer.ref))
    )


def note_list(*, tenant: Tenant, customer: CustomerProfile, viewer: Author) -> QuerySet[Note]:
    """A customer's notes the viewer may see, pinned first, newest first."""
    return (
        note_visible(tenant=tenant, viewer=viewer)
        .filter(customer=customer)
        .order_by("-is_pinned", "-created_at", "-id")
    )


def note_create(
    *,
    tenant: Tenant,
    customer: CustomerProfile,
    author: Author,
    body: str,
    type: str = NoteType.GENERAL,
    is_pinned: bool = False,
    is_private: bool = False,
) -> Note:
    if not body.strip():
        raise ValidationError({"body": ["Write something."]})
    with transaction.atomic():
        customer = profile_lock_live(tenant=tenant, profile_id=customer.pk)
        note = Note.objects.create(
            tenant=tenant,
            customer=customer,
            type=type,
            body=body,
            is_pinned=is_pinned,
            is_private=is_private,
            author_ref=author.ref,
            author_name=author.name,
        )
        title = (
            "Private note added"
            if is_private
            else f"Note added: {NoteType(type).label} by {author.name}"
        )
        Activity.objects.create(
            tenant=tenant,
            customer=customer,
            type=NOTE_ACTIVITY,
            category=Category.SUPPORT,
            title=title[:255],
            metadata={"note_id": note.pk, "note_type": type, "private": is_private},
            source_service="crm",
            source_id=str(note.pk),
            source_event_id=f"note:{note.pk}",
            occurred_at=note.created_at,
        )
    return note


def notes_create_many(
    *,
    tenant: Tenant,
    customer_ids: list[Any],
    author: Author,
    body: str,
    type: str = NoteType.FOLLOW_UP,
) -> int:
    """``note_create`` for many customers at once (a journey's staff follow-up step): the
    notes and their timeline activities in two inserts. Call inside a transaction."""
    if not body.strip():
        raise ValidationError({"body": ["Write something."]})
    notes = Note.objects.bulk_create(
        [
            Note(
                tenant=tenant,
                customer_id=customer_id,
                type=type,
                body=body,
                author_ref=author.ref,
                author_name=author.name,
            )
            for customer_id in customer_ids
        ]
    )
    title = f"Note added: {NoteType(type).label} by {author.name}"[:255]
    Activity.objects.bulk_create(
        [
            Activity(
                tenant=tenant,
                customer_id=note.customer_id,
                type=NOTE_ACTIVITY,
                category=Category.SUPPORT,
                title=title,
                metadata={"note_id": note.pk, "note_type": type, "private": False},
                source_service="crm",
                source_id=str(note.pk),
                source_event_id=f"note:{note.pk}",
                occurred_at=note.created_at,
            )
            for note in notes
        ]
    )
    return len(notes)


NOTE_EDITABLE = ("body", "type", "is_pinned", "is_private")


def note_update(*, tenant: Tenant, note: Note, editor: Author, data: dict[str, Any]) -> Note:
    """Change a note; the text before the change is kept with who changed it and when. Only
    the author may make a note private or public."""
    if (
        "is_private" in data
        and data["is_private"] != note.is_private
        and editor.ref != note.author_ref
    ):
        raise ValidationError({"is_private": ["Only the author can change who sees a note."]})
    if "body" in data and not str(data["body"]).strip():
        raise ValidationError({"body": ["Write something."]})
    with transaction.atomic():
        profile_lock_live(tenant=tenant, profile_id=note.customer_id)
        note = Note.objects.select_for_update().get(pk=note.pk, tenant=tenant)
        text_changed = any(
            name in data and data[name] != getattr(note, name) for name in ("body", "type")
        )
        if text_changed:
            NoteRevision.objects.create(
                tenant=tenant, note=note, body=note.body, type=note.type, edited_by=editor.name
            )
        for name in NOTE_EDITABLE:
            if name in data:
                setattr(note, name, data[name])
        note.edited_by = editor.name
        note.edited_at = timezone.now()
        note.save()
    return note


def note_delete(*, tenant: Tenant, note: Note, editor: Author) -> None:
    """Soft delete: the note disappears from every list; the row stays for audit."""
    with transaction.atomic():
        profile_lock_live(tenant=tenant, profile_id=note.customer_id)
        Note.objects.for_tenant(tenant).filter(pk=note.pk).update(
            deleted_at=timezone.now(), edited_by=editor.name, edited_at=timezone.now()
        )


# ----------------------------------------------------------------------------- merge


def move_activities(*, tenant: Tenant, winner: CustomerProfile, loser: CustomerProfile) -> int:
    return (
        Activity.objects.for_tenant(tenant)
        .filter(customer=loser)
        .update(customer=winner, updated_at=timezone.now())
    )


def move_notes(*, tenant: Tenant, winner: CustomerProfile, loser: CustomerProfile) -> int:
    return Note.objects.for_tenant(tenant).filter(customer=loser).update(customer=winner)


def move_consent_records(*, tenant: Tenant, winner: CustomerProfile, loser: CustomerProfile) -> int:
    return ConsentRecord.objects.for_tenant(tenant).filter(customer=loser).update(customer=winner)
