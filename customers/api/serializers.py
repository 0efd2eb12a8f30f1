"""Input and output serializers of the customers API."""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from decimal import Decimal
from uuid import UUID

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from rest_framework import serializers

from crm.models import Club
from customers.events import Category
from customers.identity import HintError, IdentityHints, normalize_email, normalize_phone
from customers.models import (
    CONSENT_FIELDS,
    IDENTITY_FIELDS,
    MEMBERSHIP_FIELDS,
    METRIC_FIELDS,
    CustomerProfile,
    LifecycleStage,
    MergeSuggestion,
    Note,
    ProfileStatus,
)

# Values given as they are (looked up by exact type first: the common case, without the
# isinstance chain below).
_AS_IS = (type(None), bool, int, str, list, dict)


def _plain(value):
    """JSON-ready value, formatted as DRF's fields format them."""
    if type(value) in _AS_IS or isinstance(value, _AS_IS):
        return value
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, date | Decimal | UUID):
        return value.isoformat() if isinstance(value, date) else str(value)
    return str(value)


# What the API shows of a profile, in its order.
CUSTOMER_OUTPUT_FIELDS = (
    "id",
    *IDENTITY_FIELDS,
    "external_ids",
    "first_name",
    "last_name",
    "date_of_birth",
    "home_club_id",
    "status",
    "lifecycle_stage",
    "tags",
    *CONSENT_FIELDS,
    *METRIC_FIELDS,
    *MEMBERSHIP_FIELDS,
    "merged_into_id",
    "created_at",
    "updated_at",
)


def customer_json(instance: CustomerProfile) -> dict:
    """``CustomerOutputSerializer(instance).data``, without building the serializer."""
    return {name: _plain(getattr(instance, name)) for name in CUSTOMER_OUTPUT_FIELDS}


# Every output field is a column's attribute, so the output can be read from a profile's
# loaded columns (customers.services.Resolution.values) as well as from an instance.
if not set(CUSTOMER_OUTPUT_FIELDS) <= {f.attname for f in CustomerProfile._meta.concrete_fields}:
    raise RuntimeError("CUSTOMER_OUTPUT_FIELDS names something that is not a profile column")


def customer_values_json(values: dict) -> dict:
    """``customer_json`` of the profile whose loaded columns (by attribute name) are
    ``values``, without building the model instance (the resolve hot path)."""
    return {name: _plain(values[name]) for name in CUSTOMER_OUTPUT_FIELDS}


class CustomerOutputSerializer(serializers.ModelSerializer):
    """A profile as the API shows it. Rendering is a plain loop over the fields: DRF's
    per-instance field building cost more than the database on the resolve hot path."""

    home_club_id = serializers.UUIDField(allow_null=True)
    merged_into_id = serializers.UUIDField(allow_null=True)

    def to_representation(self, instance: CustomerProfile) -> dict:
        return customer_json(instance)

    class Meta:
        model = CustomerProfile
        fields = list(CUSTOMER_OUTPUT_FIELDS)
        read_only_fields = fields


class HintsSerializer(serializers.Serializer):
    """Identity hints, normalised in the tenant's phone region."""

    auth_user_id = serializers.CharField(required=False, allow_blank=True, max_length=64)
    email = serializers.CharField(required=False, allow_blank=True, max_length=254)
    phone = serializers.CharField(required=False, allow_blank=True, max_length=40)
    scl_member_id = serializers.CharField(required=False, allow_blank=True, max_length=64)
    teetime_player_id = serializers.CharField(required=False, allow_blank=True, max_length=64)
    messaging_contact_id = serializers.CharField(required=False, allow_blank=True, max_length=64)
    external_ids = serializers.DictField(child=serializers.CharField(max_length=64), required=False)

    def validate(self, attrs):
        try:
            hints = IdentityHints.parse(
                attrs, phone_region=self.context["tenant"].default_phone_region
            )
        except HintError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        if hints.is_empty():
            raise serializers.ValidationError("Give at least one identifier.")
        return {"hints": hints}


# HintsSerializer's string fields and their max_length (read from the serializer, so the
# fast path below can never accept more than it does).
_HINT_MAX_LENGTH: dict[str, int] = {
    name: field.max_length
    for name, field in HintsSerializer().get_fields().items()
    if isinstance(field, serializers.CharField) and field.max_length is not None
}


def plain_hints(data, *, phone_region: str) -> IdentityHints | None:
    """The hints of a body ``HintsSerializer`` accepts as it is, parsed without building the
    serializer (the resolve hot path); None for anything else (not an object, a value that is
    not a short plain ASCII string, ``external_ids``, a bad or missing hint), which the caller
    then runs through ``HintsSerializer`` for the very same validation and error body.

    Plain ASCII strings within ``max_length`` and without NUL are exactly the values DRF's
    ``CharField`` passes through untouched apart from trimming whitespace."""
    if type(data) is not dict or "external_ids" in data:
        return None
    attrs = {}
    for name, value in data.items():
        limit = _HINT_MAX_LENGTH.get(name)
        if limit is None:
            continue  # the serializer ignores fields it does not declare
        if type(value) is not str or len(value) > limit or not value.isascii() or "\x00" in value:
            return None
        attrs[name] = value.strip()
    try:
        hints = IdentityHints.parse(attrs, phone_region=phone_region)
    except HintError:
        return None
    return None if hints.is_empty() else hints


class ResolveOutputSerializer(serializers.Serializer):
    profile = CustomerOutputSerializer()
    is_new = serializers.BooleanField()
    matched_by = serializers.ListField(child=serializers.CharField())
    confidence = serializers.IntegerField()
    merge_suggested_with = serializers.ListField(child=serializers.UUIDField())


class CustomerUpdateSerializer(serializers.Serializer):
    """What PATCH may change. Identity fields go through aliases and conflict checks."""

    first_name = serializers.CharField(required=False, allow_blank=True, max_length=100)
    last_name = serializers.CharField(required=False, allow_blank=True, max_length=100)
    date_of_birth = serializers.DateField(required=False, allow_null=True)
    home_club_id = serializers.UUIDField(required=False, allow_null=True)
    lifecycle_stage = serializers.ChoiceField(choices=LifecycleStage.choices, required=False)
    status = serializers.ChoiceField(
        choices=[ProfileStatus.ACTIVE, ProfileStatus.INACTIVE], required=False
    )
    tags = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=100
    )
    auth_user_id = serializers.CharField(required=False, max_length=64)
    email = serializers.CharField(required=False, max_length=254)
    phone = serializers.CharField(required=False, max_length=40)
    scl_member_id = serializers.CharField(required=False, max_length=64)
    teetime_player_id = serializers.CharField(required=False, max_length=64)
    messaging_contact_id = serializers.CharField(required=False, max_length=64)

    def validate_email(self, value: str) -> str:
        try:
            return normalize_email(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc

    def validate_phone(self, value: str) -> str:
        try:
            return normalize_phone(value, region=self.context["tenant"].default_phone_region)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc

    def validate_home_club_id(self, value):
        if (
            value is not None
            and not Club.objects.for_tenant(self.context["tenant"]).filter(pk=value).exists()
        ):
            raise serializers.ValidationError("No such club.")
        return value

    def validate_tags(self, value: list[str]) -> list[str]:
        return sorted({tag.strip() for tag in value if tag.strip()})

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Nothing to change.")
        return attrs


class MergeInputSerializer(serializers.Serializer):
    loser_id = serializers.UUIDField()
    reason = serializers.CharField(required=False, allow_blank=True, max_length=255)


class MergeOutputSerializer(serializers.Serializer):
    winner = CustomerOutputSerializer()
    loser_id = serializers.UUIDField()
    moved = serializers.DictField(child=serializers.IntegerField())
    merge_id = serializers.IntegerField()


class MergeSuggestionSerializer(serializers.ModelSerializer):
    profile_id = serializers.UUIDField()
    candidate_id = serializers.UUIDField()

    class Meta:
        model = MergeSuggestion
        fields = [
            "id",
            "profile_id",
            "candidate_id",
            "reason",
            "evidence",
            "status",
            "decided_by",
            "decided_at",
            "created_at",
        ]
        read_only_fields = fields


# ----------------------------------------------------------------------------- events


class EventEnvelopeSerializer(serializers.Serializer):
    """The platform's event envelope (camelCase); see docs/events.md for each type's
    payload. Documentation only: events are validated one by one by the pipeline."""

    id = serializers.CharField(max_length=128)
    type = serializers.CharField(max_length=100)
    tenantId = serializers.CharField(help_text="The tenant's slug (must be the caller's).")
    timestamp = serializers.DateTimeField()
    identity = serializers.DictField(
        required=False,
        help_text="authUserId, email, phoneNumber, sclMemberId, teetimePlayerId, "
        "messagingContactId, externalIds",
    )
    payload = serializers.DictField(required=False)


class EventBatchSerializer(serializers.Serializer):
    events = EventEnvelopeSerializer(many=True)


class RejectedEventSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    id = serializers.CharField(allow_null=True)
    # The response's field, not Serializer.errors (DRF reads declared fields, not the attribute).
    errors = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField())
    )


class IngestResultSerializer(serializers.Serializer):
    accepted = serializers.ListField(child=serializers.CharField())
    duplicates = serializers.ListField(child=serializers.CharField())
    rejected = RejectedEventSerializer(many=True)


# ----------------------------------------------------------------------------- timeline, notes


def _datetime(value: datetime, zone: tzinfo) -> str:
    """As DRF's ``DateTimeField`` shows an aware datetime: in the current time zone
    (``zone``), ISO 8601, ``Z`` for UTC."""
    text = value.astimezone(zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def activity_rows_json(rows: list[tuple]) -> list[dict]:
    """``ActivitySerializer(many=True).data`` of ``customers.timeline.TIMELINE_FIELDS`` rows,
    without building a serializer per row (the timeline's hot path; the same output, pinned
    by tests/customers/test_hot_paths.py)."""
    zone = timezone.get_current_timezone()  # once a page, not once a row
    return [
        {
            "id": int(pk),
            "type": str(type_),
            "category": str(category),
            "title": str(title),
            "metadata": {str(k): v for k, v in metadata.items()},
            "source_service": str(source_service),
            "source_id": str(source_id),
            "source_event_id": str(source_event_id),
            "occurred_at": _datetime(occurred_at, zone),
        }
        for (
            pk,
            type_,
            category,
            title,
            metadata,
            source_service,
            source_id,
            source_event_id,
            occurred_at,
        ) in rows
    ]


class ActivitySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    type = serializers.CharField()
    category = serializers.CharField()
    title = serializers.CharField()
    metadata = serializers.DictField()
    source_service = serializers.CharField()
    source_id = serializers.CharField()
    source_event_id = serializers.CharField()
    occurred_at = serializers.DateTimeField()


TIMELINE_PAGE_SIZE = 50


class TimelineQuerySerializer(serializers.Serializer):
    category = serializers.CharField(
        required=False, help_text="One category or several, comma-separated."
    )
    type = serializers.CharField(required=False, help_text="Activity types, comma-separated.")
    since = serializers.DateTimeField(required=False, help_text="Occurred at or after.")
    until = serializers.DateTimeField(required=False, help_text="Occurred before.")
    cursor = serializers.CharField(required=False)
    page_size = serializers.IntegerField(
        required=False, min_value=1, max_value=200, default=TIMELINE_PAGE_SIZE
    )

    def validate_category(self, value: str) -> list[str]:
        names = [v.strip() for v in value.split(",") if v.strip()]
        valid = {choice for choice, _ in Category.CHOICES}
        unknown = [n for n in names if n not in valid]
        if unknown:
            raise serializers.ValidationError(
                f"Unknown category {', '.join(unknown)}; use {', '.join(sorted(valid))}."
            )
        return names

    def validate_type(self, value: str) -> list[str]:
        return [v.strip() for v in value.split(",") if v.strip()]

    def validate(self, attrs):
        if attrs.get("since") and attrs.get("until") and attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"until": ["Must be after since."]})
        return attrs


class TimelinePageSerializer(serializers.Serializer):
    results = ActivitySerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class NoteSerializer(serializers.ModelSerializer):
    customer_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = Note
        fields = [
            "id",
            "customer_id",
            "type",
            "body",
            "is_pinned",
            "is_private",
            "author_name",
            "edited_by",
            "edited_at",
            "created_at",
        ]
        read_only_fields = ["id", "customer_id", "author_name", "edited_by", "edited_at"]
        extra_kwargs = {"body": {"max_length": 10_000}}


class NoteUpdateSerializer(NoteSerializer):
    class Meta(NoteSerializer.Meta):
        extra_kwargs = {"body": {"max_length": 10_000, "required": False}}
