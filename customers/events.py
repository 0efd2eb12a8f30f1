"""The platform's event envelope and the catalog of event types the CRM understands.

Producers (SCL, TeeTime, Messaging, Auth) send events in their own wire format, camelCase::

    {"id": "evt-1", "type": "teetime.booking.paid", "tenantId": "links-a",
     "timestamp": "2026-11-24T08:15:00+02:00",
     "identity": {"email": "thabo@example.com", "teetimePlayerId": "TT1"},
     "payload": {"bookingId": "B1", "amount": "350.00", "currency": "ZAR"}}

``parse_envelope`` validates one event against the envelope and its type's payload schema and
returns an ``Envelope`` with normalised identity hints and a normalised payload, or raises
``EventInvalid`` with errors keyed by field path (``identity.email``, ``payload.amount``).
Each type in ``CATALOG`` says which service sends it, which activity category it becomes,
how its activity is titled, and whether it is about a person. A type that is not in the
catalog is accepted as a generic event (kept, recorded as a ``system`` activity), never
dropped. ``docs/events.md`` documents the catalog; a test keeps the two in step.
"""

from __future__ import annotations

import functools
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pycountry
from django.core.exceptions import ValidationError
from django.utils import timezone
from rest_framework import serializers
from rest_framework.fields import SkipField, empty, get_error_detail

from .identity import IdentityHints
from .models import CHANNELS

MAX_ID_LENGTH = 128
MAX_TYPE_LENGTH = 100
MAX_DEPTH = 32  # nesting of objects and lists in one event
MAX_SOURCE_LENGTH = 32  # the sync log's source column: the type's first segment
# PostgreSQL refuses UTC offsets of 16 hours or more (no real zone is beyond +14:00).
MAX_UTC_OFFSET = timedelta(hours=16)
# Producers' clocks drift; an event dated further ahead than this is a bug upstream.
MAX_FUTURE_SKEW = timedelta(hours=1)
TYPE_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)+$")
# Envelope identity keys (camelCase, as producers send them) -> IdentityHints names.
IDENTITY_KEYS: dict[str, str] = {
    "authUserId": "auth_user_id",
    "email": "email",
    "phoneNumber": "phone",
    "sclMemberId": "scl_member_id",
    "teetimePlayerId": "teetime_player_id",
    "messagingContactId": "messaging_contact_id",
    "externalIds": "external_ids",
}
# IdentityHints names -> the envelope's keys, for error paths (``identity.phoneNumber``).
IDENTITY_PATHS: dict[str, str] = {name: key for key, name in IDENTITY_KEYS.items()}
ENVELOPE_KEYS = frozenset({"id", "type", "tenantId", "timestamp", "identity", "payload"})


class Category:
    MEMBERSHIP = "membership"
    GOLF = "golf"
    COMMERCE = "commerce"
    MARKETING = "marketing"
    SUPPORT = "support"
    SYSTEM = "system"

    CHOICES = (
        (MEMBERSHIP, "Membership"),
        (GOLF, "Golf"),
        (COMMERCE, "Commerce"),
        (MARKETING, "Marketing"),
        (SUPPORT, "Support"),
        (SYSTEM, "System"),
    )


class EventInvalid(ValidationError):
    """An event that does not fit the envelope or its type's schema; ``message_dict`` maps
    field paths to messages."""


# ----------------------------------------------------------------------------- payloads


class Payload(serializers.Serializer):
    """Base of the payload schemas: camelCase fields, unknown fields kept as they are
    (producers may add fields before the CRM learns them).

    Validated on the hot path of ingestion (every event of every request), by one instance
    per schema (``payload_schema``). ``to_internal_value`` is DRF's loop over the fields with
    what it looks up per call worked out once per instance (``_plan``), and an optional field
    that is absent skipped without the calls DRF makes to find that out; the values and the
    errors are DRF's (``tests/events/test_payload_validation.py`` compares them)."""

    @functools.cached_property
    def _plan(self) -> tuple[tuple[str, serializers.Field, Any, bool], ...] | None:
        """``(name, field, validate_<name> method, skip when absent)`` per field; None when a
        field is not a plain writable one (DRF's own loop then runs)."""
        plan = []
        for name, field in self.fields.items():
            plain = type(field).get_value is serializers.Field.get_value
            if field.read_only or field.source_attrs != [name] or not plain:
                return None
            skip = not field.required and field.default is empty
            plan.append((name, field, getattr(self, f"validate_{name}", None), skip))
        return tuple(plan)

    def to_internal_value(self, data):
        plan = self._plan
        if plan is None or type(data) is not dict:
            validated = super().to_internal_value(data)
        else:
            validated, errors = {}, {}
            for name, field, check, skip in plan:
                value = data.get(name, empty)
                if value is empty and skip:
                    continue  # DRF: not required, no default, so SkipField
                try:
                    value = field.run_validation(value)
                    if check is not None:
                        value = check(value)
                except serializers.ValidationError as exc:
                    errors[name] = exc.detail
                except ValidationError as exc:
                    errors[name] = get_error_detail(exc)
                except SkipField:
                    pass
                else:
                    validated[name] = value
            if errors:
                raise serializers.ValidationError(errors)
        extra = {k: v for k, v in data.items() if k not in self.fields}
        return {**extra, **validated}

    def run_validators(self, value):
        # DRF's first collects the read-only fields' defaults (a walk over the fields) even
        # when there is no validator to give them to; the payloads declare none.
        if self.validators:
            super().run_validators(value)


class AnyPayload(Payload):
    """Unknown types and types without fields: any JSON object."""


class MemberPayload(Payload):
    membershipType = serializers.CharField(max_length=64, required=False)
    membershipStatus = serializers.CharField(max_length=32, required=False)
    joinedOn = serializers.DateField(required=False, allow_null=True)
    renewalOn = serializers.DateField(required=False, allow_null=True)
    firstName = serializers.CharField(max_length=100, required=False, allow_blank=True)
    lastName = serializers.CharField(max_length=100, required=False, allow_blank=True)
    dateOfBirth = serializers.DateField(required=False, allow_null=True)


class MemberRenewedPayload(MemberPayload):
    renewalOn = serializers.DateField()


class BookingPayload(Payload):
    bookingId = serializers.CharField(max_length=64)
    teeTime = serializers.DateTimeField()
    players = serializers.IntegerField(min_value=1, max_value=4, default=1)
    course = serializers.CharField(max_length=100, required=False, allow_blank=True)


class BookingCancelledPayload(Payload):
    bookingId = serializers.CharField(max_length=64)
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True)


# Active ISO 4217 codes (pycountry's copy of the ISO list), less XXX ("no currency") and XTS
# ("for testing"), which no payment is in.
ISO_4217_CODES = frozenset(c.alpha_3 for c in pycountry.currencies) - {"XXX", "XTS"}


class BookingPaidPayload(Payload):
    bookingId = serializers.CharField(max_length=64)
    amount = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=Decimal("0.01"), coerce_to_string=True
    )
    currency = serializers.RegexField(
        r"^[A-Z]{3}$", error_messages={"invalid": "Use an ISO 4217 code such as ZAR or GBP."}
    )

    def validate_currency(self, value: str) -> str:
        if value not in ISO_4217_CODES:
            raise serializers.ValidationError(
                f"{value} is not an ISO 4217 currency code; use one such as ZAR or GBP."
            )
        return value


class RoundPayload(Payload):
    roundId = serializers.CharField(max_length=64)
    course = serializers.CharField(max_length=100, required=False, allow_blank=True)
    holes = serializers.ChoiceField(choices=[9, 18], default=18)
    grossScore = serializers.IntegerField(min_value=18, max_value=250, required=False)
    stablefordPoints = serializers.IntegerField(min_value=0, max_value=100, required=False)


class HandicapPayload(Payload):
    handicapIndex = serializers.DecimalField(
        max_digits=4, decimal_places=1, min_value=Decimal("-10"), max_value=Decimal("54")
    )


class CompetitionPayload(Payload):
    competitionId = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=200)
    startsAt = serializers.DateTimeField()
    clubId = serializers.CharField(max_length=64, required=False, allow_blank=True)
    entryFee = serializers.DecimalField(
        max_digits=10, decimal_places=2, min_value=Decimal("0"), required=False
    )
    url = serializers.URLField(required=False)


class CompetitionUpdatedPayload(Payload):
    competitionId = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=200, required=False)
    startsAt = serializers.DateTimeField(required=False)
    clubId = serializers.CharField(max_length=64, required=False, allow_blank=True)
    url = serializers.URLField(required=False)


class CompetitionCancelledPayload(Payload):
    competitionId = serializers.CharField(max_length=64)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)


class CompetitionEnteredPayload(Payload):
    competitionId = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    startsAt = serializers.DateTimeField(required=False)


class ContactPreferencePayload(Payload):
    emailOptIn = serializers.BooleanField(required=False)
    smsOptIn = serializers.BooleanField(required=False)
    pushOptIn = serializers.BooleanField(required=False)
    whatsappOptIn = serializers.BooleanField(required=False)
    # The payload's field, not Field.source (DRF reads declared fields, not the attribute).
    source = serializers.CharField(  # type: ignore[assignment]
        max_length=64, required=False, allow_blank=True
    )

    def validate(self, attrs):
        if not any(f"{channel}OptIn" in attrs for channel in CONSENT_CHANNELS):
            raise serializers.ValidationError(
                "Give at least one of emailOptIn, smsOptIn, pushOptIn, whatsappOptIn."
            )
        return attrs


class RegisteredPayload(Payload):
    method = serializers.CharField(max_length=32, required=False, allow_blank=True)


CONSENT_CHANNELS = CHANNELS


# ----------------------------------------------------------------------------- catalog


def _money(payload: dict) -> str:
    return f"{payload['currency']} {payload['amount']}"


def _consent_title(payload: dict) -> str:
    changes = [
        f"{channel} {'on' if payload[f'{channel}OptIn'] else 'off'}"
        for channel in CONSENT_CHANNELS
        if f"{channel}OptIn" in payload
    ]
    return "Contact preferences: " + ", ".join(changes)


def _round_title(payload: dict) -> str:
    title = f"Played {payload.get('holes', 18)} holes"
    if payload.get("course"):
        title += f" at {payload['course']}"
    if payload.get("stablefordPoints") is not None:
        title += f", {payload['stablefordPoints']} points"
    elif payload.get("grossScore") is not None:
        title += f", gross {payload['grossScore']}"
    return title


@dataclass(frozen=True)
class EventType:
    """One type of the catalog."""

    name: str
    source: str  # the producing service; part of the sync log's unique key
    category: str
    summary: str
    payload: type[Payload]
    title: Callable[[dict], str]
    person: bool = True  # False: about no one (goes straight to subscribers)
    required_identity: tuple[str, ...] = ()  # hint names one of which must be given


CATALOG: dict[str, EventType] = {
    t.name: t
    for t in (
        EventType(
            "scl.member.created",
            "scl",
            Category.MEMBERSHIP,
            "A person became a member in SCL.",
            MemberPayload,
            lambda p: f"Joined as {p.get('membershipType') or 'a'} member",
        ),
        EventType(
            "scl.member.updated",
            "scl",
            Category.MEMBERSHIP,
            "A member's details changed in SCL.",
            MemberPayload,
            lambda p: "Membership details updated",
        ),
        EventType(
            "scl.member.renewed",
            "scl",
            Category.MEMBERSHIP,
            "A membership was renewed.",
            MemberRenewedPayload,
            lambda p: f"Membership renewed until {p['renewalOn']}",
        ),
        EventType(
            "scl.member.lapsed",
            "scl",
            Category.MEMBERSHIP,
            "A membership lapsed (not renewed).",
            MemberPayload,
            lambda p: "Membership lapsed",
        ),
        EventType(
            "teetime.booking.created",
            "teetime",
            Category.GOLF,
            "A tee time was booked.",
            BookingPayload,
            lambda p: f"Booked a tee time for {p['teeTime'][:16].replace('T', ' ')}",
        ),
        EventType(
            "teetime.booking.cancelled",
            "teetime",
            Category.GOLF,
            "A booking was cancelled.",
            BookingCancelledPayload,
            lambda p: "Cancelled a booking" + (f": {p['reason']}" if p.get("reason") else ""),
        ),
        EventType(
            "teetime.booking.paid",
            "teetime",
            Category.COMMERCE,
            "A booking was paid; adds to the lifetime value.",
            BookingPaidPayload,
            lambda p: f"Paid {_money(p)} for a booking",
        ),
        EventType(
            "teetime.round.completed",
            "teetime",
            Category.GOLF,
            "A round was completed.",
            RoundPayload,
            _round_title,
        ),
        EventType(
            "teetime.handicap.updated",
            "teetime",
            Category.GOLF,
            "The player's handicap index changed.",
            HandicapPayload,
            lambda p: f"Handicap index now {p['handicapIndex']}",
        ),
        EventType(
            "teetime.competition.published",
            "teetime",
            Category.GOLF,
            "A club published a competition (about no person: subscribers only).",
            CompetitionPayload,
            lambda p: f"Competition published: {p['name']}",
            person=False,
        ),
        EventType(
            "teetime.competition.updated",
            "teetime",
            Category.GOLF,
            "A published competition changed (name, start, link).",
            CompetitionUpdatedPayload,
            lambda p: "Competition updated",
            person=False,
        ),
        EventType(
            "teetime.competition.cancelled",
            "teetime",
            Category.GOLF,
            "A published competition was cancelled.",
            CompetitionCancelledPayload,
            lambda p: "Competition cancelled",
            person=False,
        ),
        EventType(
            "teetime.competition.entered",
            "teetime",
            Category.GOLF,
            "A player entered a competition.",
            CompetitionEnteredPayload,
            lambda p: "Entered " + (p.get("name") or "a competition"),
        ),
        EventType(
            "contactPreference.updated",
            "messaging",
            Category.MARKETING,
            "Contact preferences changed (per-channel opt-in or opt-out).",
            ContactPreferencePayload,
            _consent_title,
        ),
        EventType(
            "auth.user.registered",
            "auth",
            Category.SYSTEM,
            "A platform user account was registered.",
            RegisteredPayload,
            lambda p: "Registered a platform account",
            required_identity=("auth_user_id",),
        ),
    )
}


def event_type(name: str) -> EventType:
    """The catalog entry of ``name``, or a generic one for a type the CRM does not know."""
    known = CATALOG.get(name)
    if known is not None:
        return known
    return EventType(
        name,
        name.split(".", 1)[0].lower(),
        Category.SYSTEM,
        "Not in the catalog: kept and recorded as a generic activity.",
        AnyPayload,
        lambda p: name,
    )


# ----------------------------------------------------------------------------- envelope


@functools.cache
def payload_schema(schema: type[Payload]) -> Payload:
    """One unbound instance per payload schema, reused for every event. A DRF serializer
    deep-copies its declared fields on each instantiation, which cost more than the
    validation itself; ``run_validation`` keeps no state on the instance (it returns the
    validated data or raises the same errors ``is_valid`` would collect)."""
    return schema()


@dataclass(frozen=True)
class Envelope:
    """A validated event, normalised: identity as ``IdentityHints`` names, payload with
    dates and decimals as ISO strings (JSON-ready)."""

    id: str
    type: str
    source: str
    occurred_at: datetime
    identity: dict[str, Any]
    payload: dict[str, Any]

    @property
    def spec(self) -> EventType:
        return event_type(self.type)

    def hints(self) -> IdentityHints:
        return IdentityHints(**self.identity)


def _error(errors: dict, path: str, message: str) -> None:
    errors.setdefault(path, []).append(message)


def _string(raw: dict, key: str, errors: dict, max_length: int) -> str | None:
    value = raw.get(key)
    if value is None or value == "":
        _error(errors, key, "This field is required.")
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        _error(errors, key, "Expected a string.")
        return None
    value = str(value).strip()
    if len(value) > max_length:
        _error(errors, key, f"Ensure this field has at most {max_length} characters.")
        return None
    return value


def _unstorable_strings(raw: Any, errors: dict) -> None:
    """Flag what PostgreSQL cannot store, anywhere in the event (values and keys, at any
    depth): a NUL character (text and jsonb refuse it), a lone surrogate (not encodable as
    UTF-8), NaN or Infinity (not JSON); and nesting deeper than ``MAX_DEPTH``, which the
    recursive steps after this one could not walk. Checked first, iteratively, so such an
    event is rejected on its own instead of failing the batch's INSERT. Paths are escaped:
    the error is safe to render."""
    if _plainly_storable(raw):
        return
    stack: list[tuple[Any, str, int]] = [(raw, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            _error(errors, path or "event", f"Nested deeper than {MAX_DEPTH} levels.")
        elif isinstance(value, str):
            if not storable_text(value):
                _error(errors, path, "Contains a NUL character or an unpaired surrogate.")
        elif isinstance(value, dict):
            for key, item in value.items():
                key = str(key)
                sub = f"{path}.{safe_text(key)}" if path else safe_text(key)
                if not storable_text(key):
                    _error(
                        errors, sub, "The key contains a NUL character or an unpaired surrogate."
                    )
                stack.append((item, sub, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, path, depth + 1) for item in value)
        elif isinstance(value, float) and not math.isfinite(value):
            _error(errors, path, "NaN and Infinity are not JSON numbers.")


_PLAIN_SCALARS = frozenset({int, bool, type(None)})


def _plainly_storable(raw: Any) -> bool:
    """True when ``_unstorable_strings`` would find nothing; False when it might (it then
    walks the event again to name the paths). The common case of ingestion, checked level by
    level without building a path per value, with every string and key of the event joined
    and checked at once (a lone surrogate fails the UTF-8 encoding of the whole)."""
    strings: list[str] = []
    level = [raw]
    for _ in range(MAX_DEPTH + 1):
        below: list[Any] = []
        for value in level:
            kind = type(value)
            if kind is str:
                strings.append(value)
            elif kind is dict:
                strings.extend(value)  # the keys (a key that is not a string: see below)
                below.extend(value.values())
            elif kind is list:
                below.extend(value)
            elif kind is float:
                if not math.isfinite(value):
                    return False
            elif kind not in _PLAIN_SCALARS:
                return False
        if not below:
            break
        level = below
    else:
        return False  # deeper than MAX_DEPTH
    try:
        text = "".join(strings)
    except TypeError:
        return False
    if "\x00" in text:
        return False
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return False
    return True


def storable_text(text: str) -> bool:
    """Whether PostgreSQL can store ``text`` (no NUL, no lone surrogate)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def safe_text(text: str) -> str:
    """``text`` with NULs and surrogates escaped (``\\u0000``), for error paths."""
    return (
        text
        if storable_text(text)
        else text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")
    )


def _timestamp(raw: dict, errors: dict, now: datetime) -> datetime | None:
    value = raw.get("timestamp")
    if not isinstance(value, str) or not value:
        _error(errors, "timestamp", "Expected an ISO 8601 date-time with a UTC offset.")
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        _error(errors, "timestamp", "Expected an ISO 8601 date-time with a UTC offset.")
        return None
    if parsed.tzinfo is None:
        _error(errors, "timestamp", "Give a UTC offset (e.g. Z or +02:00).")
        return None
    offset = parsed.utcoffset()
    if offset is not None and abs(offset) >= MAX_UTC_OFFSET:
        _error(errors, "timestamp", "The UTC offset must be between -15:59 and +15:59.")
        return None
    try:
        # Stored in UTC: a date near year 1 or 9999 whose UTC moment falls outside the
        # calendar is out of range here rather than a row no one can read back.
        parsed = parsed.astimezone(UTC)
    except OverflowError:
        _error(errors, "timestamp", "This date-time is out of range.")
        return None
    if parsed > now + MAX_FUTURE_SKEW:
        _error(errors, "timestamp", "This event is dated in the future.")
        return None
    return parsed


def _identity(raw: Any, errors: dict, phone_region: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        _error(errors, "identity", "Expected an object.")
        return {}
    hints: dict[str, Any] = {}
    for key, value in raw.items():
        name = IDENTITY_KEYS.get(key)
        if name is None:
            _error(errors, f"identity.{key}", "Unknown identifier.")
        elif value not in (None, ""):
            hints[name] = value
    try:
        parsed = IdentityHints.parse(hints, phone_region=phone_region)
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            for message in messages:
                _error(errors, f"identity.{IDENTITY_PATHS.get(name, name)}", message)
        return {}
    result: dict[str, Any] = {
        name: getattr(parsed, name) for name in IDENTITY_KEYS.values() if getattr(parsed, name)
    }
    return result


def _flatten(prefix: str, detail: Any, errors: dict) -> None:
    if isinstance(detail, dict):
        for key, value in detail.items():
            path = prefix if key == "non_field_errors" else f"{prefix}.{key}"
            _flatten(path, value, errors)
    elif isinstance(detail, list) and detail and not isinstance(detail[0], str | dict | list):
        _error(errors, prefix, str(detail))
    elif isinstance(detail, list):
        for item in detail:
            if isinstance(item, str):
                _error(errors, prefix, str(item))
            else:
                _flatten(prefix, item, errors)
    else:
        _error(errors, prefix, str(detail))


def parse_envelope(
    raw: Any, *, tenant_slug: str, tenant_id: str, phone_region: str, now: datetime | None = None
) -> Envelope:
    """Validate one raw event for the given tenant; raises ``EventInvalid``. ``now``: the
    caller's clock, which an event may not be dated more than ``MAX_FUTURE_SKEW`` after."""
    if not isinstance(raw, dict):
        raise EventInvalid({"event": ["Expected an event object."]})
    errors: dict[str, list[str]] = {}
    _unstorable_strings(raw, errors)
    if errors:
        raise EventInvalid(errors)
    for key in raw:
        if key not in ENVELOPE_KEYS:
            _error(errors, key, "Unknown envelope field.")
    event_id = _string(raw, "id", errors, MAX_ID_LENGTH)
    type_name = _string(raw, "type", errors, MAX_TYPE_LENGTH)
    if type_name is not None and not TYPE_PATTERN.match(type_name):
        _error(errors, "type", "Expected a dotted type such as teetime.booking.created.")
        type_name = None
    elif type_name is not None and len(type_name.split(".", 1)[0]) > MAX_SOURCE_LENGTH:
        _error(
            errors,
            "type",
            f"The service name before the first dot has at most {MAX_SOURCE_LENGTH} characters.",
        )
        type_name = None
    tenant_ref = raw.get("tenantId")
    if tenant_ref in (None, ""):
        _error(errors, "tenantId", "This field is required.")
    elif not _same_tenant(tenant_ref, tenant_slug, tenant_id):
        _error(errors, "tenantId", "This event belongs to another tenant than your credential.")
    occurred_at = _timestamp(raw, errors, now or timezone.now())
    identity = _identity(raw.get("identity"), errors, phone_region)
    payload_raw = raw.get("payload", {})
    payload: dict[str, Any] = {}
    spec = event_type(type_name) if type_name else None
    if payload_raw is None:
        payload_raw = {}
    if not isinstance(payload_raw, dict):
        _error(errors, "payload", "Expected an object.")
    elif spec is not None:
        try:
            payload = _jsonable(payload_schema(spec.payload).run_validation(payload_raw))
        except serializers.ValidationError as exc:
            _flatten("payload", exc.detail, errors)
    if spec is not None and "identity" not in errors:
        if spec.person and not identity and not _identity_errors(errors):
            _error(errors, "identity", "This event type is about a person: give an identifier.")
        for name in spec.required_identity:
            if name not in identity and not _identity_errors(errors):
                _error(errors, f"identity.{IDENTITY_PATHS[name]}", "This event type requires it.")
    if errors:
        raise EventInvalid(errors)
    assert spec is not None and event_id is not None and occurred_at is not None
    return Envelope(event_id, spec.name, spec.source, occurred_at, identity, payload)


def _same_tenant(reference: Any, slug: str, tenant_id: str) -> bool:
    """``reference`` names the tenant: its slug, or its id in any UUID spelling."""
    if not isinstance(reference, str):
        return False
    if reference.strip() == slug:
        return True
    try:
        return uuid.UUID(reference.strip()) == uuid.UUID(tenant_id)
    except ValueError:
        return False


def _identity_errors(errors: dict) -> bool:
    return any(path.startswith("identity") for path in errors)


_JSON_SCALARS = frozenset({str, int, bool, float, type(None)})


def _jsonable(value: Any) -> Any:
    if type(value) in _JSON_SCALARS:  # most values: nothing to convert
        return value
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


__all__ = [
    "CATALOG",
    "Category",
    "Envelope",
    "EventInvalid",
    "EventType",
    "event_type",
    "parse_envelope",
    "safe_text",
    "storable_text",
]
