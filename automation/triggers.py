"""What brings people into journeys.

- Events: ``journeys_on_events`` is an event subscriber (``crm.registry``), called once per
  processed batch after it committed. It reads the tenant's ACTIVE journeys from the
  database each time (one query; never a cached map that goes stale), matches the batch's
  events against each event trigger (type and payload conditions) in memory, and enrolls the
  matching people set-wise, one statement per journey. The trigger key is the event's
  identity, so a replayed batch enrolls nobody twice. Events that journeys wait for (a WAIT
  until an event, a goal, an exit) make the people's enrollments due now: the engine looks at
  them at once.
- Segments: ``segment_triggers_run`` (every minute) enrolls from the ``SegmentChange`` rows a
  refresh wrote, after the journey's cursor (the last change looked at; set at activation so
  only changes from then on count). The journey row is locked (``SKIP LOCKED``) while its
  cursor moves, and the change id is the trigger key.
- Dates: ``date_triggers_run`` (hourly; each tenant's local date) enrolls birthdays,
  membership anniversaries, renewals N days ahead and people whose last round was N days
  ago. The key names the person and the local date, so the hourly runs enroll once a day.
- Manual: one person, a segment's members, or a CSV (``id``, ``email`` or ``phone``).
"""

from __future__ import annotations

import csv
import io
import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, JSONField, Max, OuterRef, Subquery
from django.utils import timezone

from crm.models import Tenant
from crm.registry import ProcessedEvent
from customers.identity import normalize_email, normalize_phone
from customers.models import Activity, AliasKind, CustomerProfile, IdentityAlias, ProfileStatus
from marketing.models import Segment, SegmentChange, SegmentMembership

from .engine import Intake, enrollments_create, enrollments_insert, journeys_kick, wait_end
from .journeys import journey_tz
from .models import Enrollment, Journey, JourneyStatus, Step, StepType

logger = logging.getLogger(__name__)

ROUND_EVENT = "teetime.round.completed"
MAX_CSV_ROWS = 100_000


# ----------------------------------------------------------------------------- events


def _number(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def payload_matches(conditions: list[dict[str, Any]], payload: dict[str, Any]) -> bool:
    """All conditions hold on the payload (``field`` may be dotted: ``course.name``).
    Comparisons are numeric when both sides are numbers, else textual; a missing field
    fails every condition but ``neq``."""
    for condition in conditions:
        actual: Any = payload
        for part in condition["field"].split("."):
            actual = actual.get(part) if isinstance(actual, dict) else None
        op, expected = condition["operator"], condition.get("value")
        if op == "exists":
            ok = (actual is not None) == bool(expected if expected is not None else True)
        elif actual is None:
            ok = op == "neq"
        elif op in ("eq", "neq"):
            a, b = _number(actual), _number(expected)
            same = a == b if a is not None and b is not None else str(actual) == str(expected)
            ok = same if op == "eq" else not same
        elif op == "in":
            ok = str(actual) in {str(v) for v in expected}
        else:
            a, b = _number(actual), _number(expected)
            if a is None or b is None:
                ok = False
            else:
                ok = {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]
        if not ok:
            return False
    return True


def _active_journeys(tenant: Tenant, types: set[str]) -> list[Journey]:
    """The tenant's ACTIVE journeys, read fresh (one query), each with its entry step's type
    and config and whether a WAIT step of any of its versions waits for one of ``types``."""
    entry = Step.objects.filter(
        version_id=OuterRef("current_version_id"), key=OuterRef("current_version__entry_key")
    )
    return list(
        Journey.objects.for_tenant(tenant)
        .filter(status=JourneyStatus.ACTIVE)
        .select_related("tenant", "current_version")
        .annotate(
            entry_type=Subquery(entry.values("type")[:1]),
            entry_config=Subquery(entry.values("config")[:1], output_field=JSONField()),
            step_waits=Exists(
                Step.objects.filter(
                    version__journey_id=OuterRef("pk"),
                    type=StepType.WAIT,
                    config__event_type__in=sorted(types),
                )
            ),
        )
    )


def _intake(journey: Any, people: list[ProcessedEvent], now: datetime) -> Intake | None:
    """The events of the batch that match the journey's event trigger, as an intake."""
    trigger = journey.trigger or {}
    if trigger.get("type") != "event" or journey.entry_type is None:
        return None
    conditions = trigger.get("conditions") or []
    matched = [
        e
        for e in people
        if e.type == trigger.get("event_type") and payload_matches(conditions, e.payload)
    ]
    if not matched:
        return None
    entry = Step(type=journey.entry_type, config=journey.entry_config)
    return Intake(
        journey,
        wait_end(journey, entry, now),
        [str(e.profile_id) for e in matched],
        [f"event:{e.source}:{e.event_id}" for e in matched],
    )


def journeys_on_events(*, tenant: Tenant, events: Sequence[ProcessedEvent]) -> None:
    """Event subscriber, one set-wise pass per batch for all the tenant's journeys: one
    query reads the ACTIVE journeys (with their entry steps and awaited events), the events
    are matched against their triggers in memory, one statement enrolls everyone matched in
    every journey (``enrollments_insert``), one makes the enrollments waiting for these
    events due now; then one kick of the sweep. A tenant with no ACTIVE journey costs one
    ``EXISTS``."""
    people = [e for e in events if e.profile_id is not None]
    if not people:
        return
    # Most batches are of tenants with no ACTIVE journey: a plain EXISTS answers them (about
    # 1.5 ms a batch) before the annotated read (about 7 ms, most of it Django building it).
    if not Journey.objects.for_tenant(tenant).filter(status=JourneyStatus.ACTIVE).exists():
        return
    now = timezone.now()
    types = {e.type for e in people}
    journeys = _active_journeys(tenant, types)
    if not journeys:
        return
    intakes = [i for i in (_intake(j, people, now) for j in journeys) if i is not None]
    entered = enrollments_insert(tenant=tenant, intakes=intakes, now=now) if intakes else 0
    woken = _wake(tenant, journeys, people, types, now)
    if entered or woken:
        journeys_kick(tenant)


def _wake(tenant: Tenant, journeys: list[Any], people, types: set[str], now) -> int:
    """Enrollments of these people whose journey waits for one of these event types (a
    goal, an exit, a WAIT step of any version) become due now."""
    awaited = [
        j.pk
        for j in journeys
        if j.step_waits
        or (j.goal or {}).get("event_type") in types
        or (j.exit_criteria or {}).get("event_type") in types
    ]
    if not awaited:
        return 0
    return Enrollment.objects.filter(
        tenant=tenant,
        journey_id__in=awaited,
        status="ACTIVE",
        customer_id__in={e.profile_id for e in people},
        due_at__gt=now,
    ).update(due_at=now, updated_at=now)


# ----------------------------------------------------------------------------- segments


def segment_triggers_run(*, now: datetime | None = None) -> int:
    """Enroll the people who entered (or left) the segments of segment-triggered journeys
    since each journey's cursor."""
    now = now or timezone.now()
    entered = 0
    kicked: set[Any] = set()
    with transaction.atomic():
        journeys = list(
            Journey.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                status=JourneyStatus.ACTIVE,
                trigger__type__in=["segment_entered", "segment_left"],
            )
            .select_related("tenant", "current_version")
        )
        for journey in journeys:
            kind = "ENTERED" if journey.trigger["type"] == "segment_entered" else "LEFT"
            changes = list(
                SegmentChange.objects.for_tenant(journey.tenant)
                .filter(
                    segment_id=journey.trigger["segment_id"],
                    kind=kind,
                    id__gt=journey.trigger_cursor,
                )
                .order_by("id")
                .values_list("id", "customer_id")[:50_000]
            )
            if not changes:
                continue
            got = enrollments_create(
                journey=journey,
                customer_ids=[c for _, c in changes],
                trigger_keys=[f"segment:{pk}" for pk, _ in changes],
                now=now,
                kick=False,
            )
            Journey.objects.filter(pk=journey.pk).update(trigger_cursor=changes[-1][0])
            entered += got
            if got:
                kicked.add(journey.tenant)
    for tenant in kicked:
        journeys_kick(tenant)
    return entered


# ----------------------------------------------------------------------------- dates


def _date_candidates(journey: Journey, now: datetime) -> tuple[list[Any], str]:
    """The people a date trigger names today (the journey's local date)."""
    today = now.astimezone(journey_tz(journey)).date()
    trigger = journey.trigger
    kind, days = trigger["kind"], int(trigger.get("days") or 0)
    base = CustomerProfile.objects.for_tenant(journey.tenant).filter(
        status__in=[ProfileStatus.ACTIVE, ProfileStatus.INACTIVE], deleted_at__isnull=True
    )
    if kind in ("birthday", "membership_anniversary"):
        column = "date_of_birth" if kind == "birthday" else "membership_joined_on"
        days_of = [(today.month, today.day)]
        leap = today.year % 4 == 0 and (today.year % 100 != 0 or today.year % 400 == 0)
        if (today.month, today.day) == (2, 28) and not leap:
            days_of.append((2, 29))  # 29 February is celebrated on the 28th
        ids: list[Any] = []
        for month, day in days_of:
            ids += list(
                base.filter(**{f"{column}__month": month, f"{column}__day": day})
                .exclude(**{f"{column}__year": today.year})
                .values_list("pk", flat=True)
            )
    elif kind == "renewal_upcoming":
        ids = list(
            base.filter(membership_renewal_on=today + timedelta(days=days)).values_list(
                "pk", flat=True
            )
        )
    else:  # since_last_round: the last round was exactly N local days ago
        tz = journey_tz(journey)
        start = datetime.combine(today - timedelta(days=days), datetime.min.time(), tzinfo=tz)
        last = (
            Activity.objects.for_tenant(journey.tenant)
            .filter(type=ROUND_EVENT)
            .values("customer_id")
            .annotate(last=Max("occurred_at"))
            .filter(last__gte=start, last__lt=start + timedelta(days=1))
        )
        ids = list(base.filter(pk__in=last.values("customer_id")).values_list("pk", flat=True))
    return ids, today.isoformat()


def date_triggers_run(*, now: datetime | None = None) -> int:
    """Hourly: enroll the people each date-triggered journey names on its local today."""
    now = now or timezone.now()
    entered = 0
    kicked: dict[Any, Tenant] = {}
    journeys = Journey.objects.filter(
        status=JourneyStatus.ACTIVE, trigger__type="date"
    ).select_related("tenant", "current_version")
    for journey in journeys:
        ids, day = _date_candidates(journey, now)
        if not ids:
            continue
        got = enrollments_create(
            journey=journey,
            customer_ids=ids,
            trigger_keys=[f"date:{day}:{pk}" for pk in ids],
            now=now,
            kick=False,
        )
        entered += got
        if got:
            kicked[journey.tenant_id] = journey.tenant
    for tenant in kicked.values():
        journeys_kick(tenant)
    return entered


# ----------------------------------------------------------------------------- manual


def _require_active(journey: Journey) -> None:
    if journey.status != JourneyStatus.ACTIVE:
        raise ValidationError({"journey": ["Only an active journey takes people in."]})


def journey_enroll_customers(
    *, journey: Journey, customer_ids: Sequence[Any], now: datetime | None = None
) -> int:
    """Enroll people by id (the tenant's, live ones; others are left out)."""
    _require_active(journey)
    return enrollments_create(journey=journey, customer_ids=list(customer_ids), now=now)


def journey_enroll_segment(
    *, journey: Journey, segment: Segment, now: datetime | None = None
) -> int:
    """Enroll a segment's current members."""
    _require_active(journey)
    if segment.tenant_id != journey.tenant_id:
        raise ValidationError({"segment": ["No such segment."]})
    ids = list(
        SegmentMembership.objects.filter(tenant=journey.tenant, segment=segment).values_list(
            "customer_id", flat=True
        )
    )
    return enrollments_create(journey=journey, customer_ids=ids, now=now)


def journey_enroll_csv(
    *, journey: Journey, text: str, now: datetime | None = None
) -> dict[str, Any]:
    """Enroll the people of a CSV (column ``id``, ``email`` or ``phone``). Rows that match
    nobody are returned with the reason."""
    _require_active(journey)
    tenant = journey.tenant
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if not set(header) & {"id", "email", "phone"}:
        raise ValidationError({"file": ["The CSV needs an id, email or phone column."]})
    reader.fieldnames = header
    keys: list[tuple[int, str, str]] = []
    unmatched: list[dict[str, Any]] = []
    for line, row in enumerate(reader, start=2):
        if line - 1 > MAX_CSV_ROWS:
            raise ValidationError({"file": [f"At most {MAX_CSV_ROWS:,} rows per file."]})
        ident, email, phone = ((row.get(k) or "").strip() for k in ("id", "email", "phone"))
        try:
            if ident:
                keys.append((line, "id", str(UUID(ident))))
            elif email:
                keys.append((line, AliasKind.EMAIL, normalize_email(email)))
            elif phone:
                value = normalize_phone(phone, region=tenant.default_phone_region)
                keys.append((line, AliasKind.PHONE, value))
            else:
                unmatched.append({"line": line, "error": "The row has no id, email or phone."})
        except (ValueError, ValidationError):
            unmatched.append({"line": line, "error": "Not a valid id, email or phone."})
    by_kind: dict[str, set[str]] = defaultdict(set)
    for _, kind, value in keys:
        by_kind[kind].add(value)
    owners: dict[tuple[str, str], str] = {}
    if by_kind.get("id"):
        for pk in (
            CustomerProfile.objects.for_tenant(tenant)
            .filter(pk__in=by_kind["id"])
            .values_list("pk", flat=True)
        ):
            owners[("id", str(pk))] = str(pk)
    aliases = {k: v for k, v in by_kind.items() if k != "id"}
    if aliases:
        for kind, value, profile in (
            IdentityAlias.objects.for_tenant(tenant)
            .filter(kind__in=aliases, value__in=set().union(*aliases.values()))
            .values_list("kind", "value", "profile_id")
        ):
            owners[(kind, value)] = str(profile)
    ids: list[str] = []
    for line, kind, value in keys:
        owner = owners.get((kind, value))
        if owner:
            ids.append(owner)
        else:
            unmatched.append({"line": line, "error": f"No customer with this {kind}."})
    entered = enrollments_create(journey=journey, customer_ids=sorted(set(ids)), now=now)
    return {
        "rows": len(keys) + len([u for u in unmatched if "No customer" not in u["error"]]),
        "matched": len(set(ids)),
        "entered": entered,
        "unmatched": sorted(unmatched, key=lambda u: u["line"])[:100],
    }
