"""Subject-access export (POPIA s23, UK GDPR art. 15): everything the tenant holds about one
person, as one JSON document and as a human-readable HTML page.

Each app contributes sections through ``crm.registry.register_export_section`` (this app's
are registered in ``CustomersConfig.ready()``); the document is the sections in registration
order. Both forms are generators of text chunks served by a ``StreamingHttpResponse``: every
section reads its rows with ``.iterator(chunk_size=EXPORT_CHUNK)`` (a server-side cursor), so
a person with 100,000 activities exports in seconds in constant memory.

Who the person is: the live profile and the profiles merged into it (the same person; merges
move most rows to the winner, but sync-log rows, merge audits and import rows keep the
loser's id). A merged, erased or deleted profile has no export (``customer_live``: 404).

Consistency: the sections are read one after the other outside a transaction; a row written
meanwhile may appear in one section and not in another (an event processed mid-export).
Notes follow the notes rules: private notes only for their author (``timeline.note_visible``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Q
from django.utils.html import escape

from crm.audit import AuditAction, audit_record
from crm.models import Tenant
from crm.registry import export_sections, register_export_section

from .models import (
    Activity,
    ConsentRecord,
    CustomerProfile,
    IdentityAlias,
    MergeSuggestion,
    NoteRevision,
    ProfileMerge,
    SyncLogEntry,
)
from .timeline import Author, note_visible

EXPORT_FORMAT = "crm.subject-access/1"
EXPORT_CHUNK = 2000
# Rows joined into one chunk of the response: fewer, larger writes to the socket.
_ROWS_PER_CHUNK = 500


def export_people(*, tenant: Tenant, customer: CustomerProfile) -> list[Any]:
    """The person's profile ids: the live profile first, then those merged into it."""
    merged = CustomerProfile.objects.for_tenant(tenant).filter(merged_into=customer)
    return [customer.pk, *merged.order_by("created_at", "id").values_list("pk", flat=True)]


def _dumps(value: Any) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False, sort_keys=False)


def _batched(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= _ROWS_PER_CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def customer_export_json(
    *, tenant: Tenant, customer: CustomerProfile, viewer: Author, now: datetime
) -> Iterator[str]:
    """The export as JSON text chunks: ``{"format", "generated_at", "tenant", "customer_id",
    "sections": {name: [row, ...], ...}}``."""
    people = export_people(tenant=tenant, customer=customer)
    head = {
        "format": EXPORT_FORMAT,
        "generated_at": now,
        "tenant": tenant.slug,
        "customer_id": customer.pk,
        "profile_ids": people,
    }
    yield _dumps(head)[:-1] + ', "sections": {'
    for index, section in enumerate(export_sections()):
        yield ("," if index else "") + _dumps(section.name) + ": ["
        first = True
        rows = section.rows(tenant=tenant, customer=customer, people=people, viewer=viewer)
        for batch in _batched(rows):
            yield ("" if first else ",") + ",".join(_dumps(row) for row in batch)
            first = False
        yield "]"
    yield "}}"


EXPORT_FORMATS = ("json", "html")


def customer_export(
    *,
    tenant: Tenant,
    customer: CustomerProfile,
    viewer: Author,
    actor: str,
    ip: str | None,
    format: str = "json",
    now: datetime,
) -> Iterator[str]:
    """Record the export in the audit trail (committed before the first byte is sent), then
    the document's chunks. ``customer`` must be live (the caller read it through
    ``customer_live``)."""
    audit_record(
        tenant=tenant,
        actor=actor,
        action=AuditAction.CUSTOMER_EXPORTED,
        object_type="customers.CustomerProfile",
        object_id=customer.pk,
        ip=ip,
        detail={"format": format},
    )
    render = customer_export_html if format == "html" else customer_export_json
    return render(tenant=tenant, customer=customer, viewer=viewer, now=now)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, dict | list):
        return escape(_dumps(value))
    if isinstance(value, datetime):
        return escape(value.isoformat(timespec="seconds"))
    return escape(str(value))


def customer_export_html(
    *, tenant: Tenant, customer: CustomerProfile, viewer: Author, now: datetime
) -> Iterator[str]:
    """The same export as a plain, self-contained HTML page (one table per section)."""
    people = export_people(tenant=tenant, customer=customer)
    yield (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Personal data held about {escape(str(customer))}</title>"
        "<style>body{font-family:sans-serif;margin:2rem}table{border-collapse:collapse;"
        "margin-bottom:2rem}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;"
        "vertical-align:top;font-size:.85rem}</style></head><body>"
        f"<h1>Personal data held about {escape(str(customer))}</h1>"
        f"<p>Held by {escape(tenant.name)}. Generated {escape(now.isoformat(timespec='seconds'))}"
        f". Profile {escape(str(customer.pk))}.</p>"
    )
    for section in export_sections():
        yield f'<section data-section="{escape(section.name)}"><h2>{escape(section.title)}</h2>'
        columns: list[str] | None = None
        count = 0
        rows = section.rows(tenant=tenant, customer=customer, people=people, viewer=viewer)
        for batch in _batched(rows):
            parts = []
            if columns is None:
                columns = list(batch[0])
                head = "".join(f"<th>{escape(c.replace('_', ' '))}</th>" for c in columns)
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>")
            for row in batch:
                cells = "".join(f"<td>{_cell(row.get(c))}</td>" for c in columns)
                parts.append(f"<tr>{cells}</tr>")
            count += len(batch)
            yield "".join(parts)
        yield "</tbody></table></section>" if count else "<p>Nothing held.</p></section>"
    yield "</body></html>"


# ----------------------------------------------------------------------------- sections


def _profile_rows(*, tenant, customer, people, viewer) -> Iterator[dict[str, Any]]:
    fields = [
        f.attname
        for f in CustomerProfile._meta.concrete_fields
        if f.name not in ("tenant", "merged_into")
    ]
    rows = CustomerProfile.objects.for_tenant(tenant).filter(pk__in=people)
    yield from rows.order_by("created_at", "id").values(*fields, "merged_into_id")


def _identifier_rows(*, tenant, customer, people, viewer):
    rows = IdentityAlias.objects.for_tenant(tenant).filter(profile_id__in=people)
    return (
        rows.order_by("kind", "value")
        .values("kind", "value", "source", "created_at")
        .iterator(chunk_size=EXPORT_CHUNK)
    )


def _consent_rows(*, tenant, customer, people, viewer):
    rows = ConsentRecord.objects.for_tenant(tenant).filter(customer_id__in=people)
    return (
        rows.order_by("-occurred_at", "-id")
        .values("channel", "opt_in", "source", "occurred_at", "evidence", "created_at")
        .iterator(chunk_size=EXPORT_CHUNK)
    )


def _timeline_rows(*, tenant, customer, people, viewer):
    # Newest first, the timeline index's order.
    rows = Activity.objects.for_tenant(tenant).filter(customer_id__in=people)
    return (
        rows.order_by("-occurred_at", "-id")
        .values("occurred_at", "type", "category", "title", "metadata", "source_service")
        .iterator(chunk_size=EXPORT_CHUNK)
    )


def _note_rows(*, tenant, customer, people, viewer):
    rows = note_visible(tenant=tenant, viewer=viewer).filter(customer_id__in=people)
    return (
        rows.order_by("-created_at", "-id")
        .values("created_at", "type", "body", "is_private", "author_name", "edited_by", "edited_at")
        .iterator(chunk_size=EXPORT_CHUNK)
    )


def _note_revision_rows(*, tenant, customer, people, viewer):
    # Earlier texts of the notes the requester may see (the same notes rules).
    notes = note_visible(tenant=tenant, viewer=viewer).filter(customer_id__in=people)
    rows = NoteRevision.objects.for_tenant(tenant).filter(note__in=notes.values("pk"))
    return (
        rows.order_by("-created_at", "-id")
        .values("created_at", "note_id", "type", "body", "edited_by")
        .iterator(chunk_size=EXPORT_CHUNK)
    )


def _sync_log_rows(*, tenant, customer, people, viewer):
    rows = SyncLogEntry.objects.for_tenant(tenant).filter(profile_id__in=people)
    return (
        rows.order_by("-created_at", "-id")
        .values("created_at", "source", "event_id", "type", "occurred_at", "payload", "status")
        .iterator(chunk_size=EXPORT_CHUNK)
    )


def _merge_rows(*, tenant, customer, people, viewer):
    rows = ProfileMerge.objects.for_tenant(tenant).filter(
        Q(winner_id__in=people) | Q(loser_id__in=people)
    )
    return (
        rows.order_by("created_at", "id")
        .values("created_at", "winner_id", "loser_id", "reason", "loser_snapshot")
        .iterator(chunk_size=EXPORT_CHUNK)
    )


def _suggestion_rows(*, tenant, customer, people, viewer):
    # The other profile of a pair is another person (or was): its id and the evidence that
    # names its details stay out; what was suggested about this person and the decision stay.
    rows = MergeSuggestion.objects.for_tenant(tenant).filter(
        Q(profile_id__in=people) | Q(candidate_id__in=people)
    )
    return (
        rows.order_by("created_at", "id")
        .values("created_at", "reason", "status", "decided_at")
        .iterator(chunk_size=EXPORT_CHUNK)
    )


def register_customer_export_sections() -> None:
    register_export_section(
        "profile",
        title="Profile",
        rows=_profile_rows,
        # ProfileUpdate holds copies of the profile's updated_at (exported here): the current
        # one, and until the nightly prune the times it replaced (ids and times only).
        covers=["customers.CustomerProfile", "customers.ProfileUpdate"],
    )
    register_export_section(
        "identifiers",
        title="Identifiers (every value ever linked)",
        rows=_identifier_rows,
        covers=["customers.IdentityAlias"],
    )
    register_export_section(
        "consent_history",
        title="Consent history",
        rows=_consent_rows,
        covers=["customers.ConsentRecord"],
    )
    register_export_section(
        "timeline",
        title="Timeline (activities)",
        rows=_timeline_rows,
        covers=["customers.Activity"],
    )
    register_export_section("notes", title="Notes", rows=_note_rows, covers=["customers.Note"])
    register_export_section(
        "note_revisions",
        title="Earlier versions of notes",
        rows=_note_revision_rows,
        covers=["customers.NoteRevision"],
    )
    register_export_section(
        "events_received",
        title="Events received about you",
        rows=_sync_log_rows,
        covers=["customers.SyncLogEntry"],
    )
    register_export_section(
        "merges",
        title="Profiles merged",
        rows=_merge_rows,
        covers=["customers.ProfileMerge"],
    )
    register_export_section(
        "merge_suggestions",
        title="Possible duplicates considered",
        rows=_suggestion_rows,
        covers=["customers.MergeSuggestion"],
    )
