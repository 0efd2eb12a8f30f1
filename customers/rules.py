"""The customer fields rules may use (the whitelist), registered with ``crm.rules``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    LessThan,
    LessThanOrEqual,
)

from crm.rules import Computed, Context, Field, T, registry

from .events import Category
from .models import Activity, Channel, LifecycleStage, ProfileStatus

ACTIVITY_LOOKUPS = {
    "eq": Exact,
    "gt": GreaterThan,
    "gte": GreaterThanOrEqual,
    "lt": LessThan,
    "lte": LessThanOrEqual,
}
MAX_ACTIVITY_DAYS = 3650


def _activity_params(raw: Any, context: Any) -> dict:
    if not isinstance(raw, dict):
        raise ValidationError(
            'Expected {"days": N, "type": ..., "category": ..., "source_id": ...}.'
        )
    unknown = set(raw) - {"days", "type", "category", "source_id"}
    if unknown:
        raise ValidationError(f"Unknown params: {', '.join(sorted(unknown))}.")
    days = raw.get("days")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_ACTIVITY_DAYS:
        raise ValidationError(f"days must be a whole number from 1 to {MAX_ACTIVITY_DAYS}.")
    params: dict[str, Any] = {"days": days}
    if raw.get("type") is not None:
        if not isinstance(raw["type"], str) or not raw["type"].strip() or "\x00" in raw["type"]:
            raise ValidationError("type must be an activity type such as teetime.round.completed.")
        params["type"] = raw["type"]
    if raw.get("category") is not None:
        categories = [value for value, _ in Category.CHOICES]
        if raw["category"] not in categories:
            raise ValidationError(f"category must be one of {', '.join(categories)}.")
        params["category"] = raw["category"]
    if raw.get("source_id") is not None:
        # The booking, round or competition the activity is about (e.g. "entered competition
        # C-1": type teetime.competition.entered, source_id C-1).
        if not isinstance(raw["source_id"], str) or not 0 < len(raw["source_id"]) <= 128:
            raise ValidationError("source_id must be the id of a booking, round or competition.")
        params["source_id"] = raw["source_id"]
    return params


def _activity_filter(params: dict, ctx: Context) -> Q:
    q = Q(occurred_at__gt=ctx.now - timedelta(days=params["days"]), occurred_at__lte=ctx.now)
    if "type" in params:
        q &= Q(type=params["type"])
    if "category" in params:
        q &= Q(category=params["category"])
    if "source_id" in params:
        q &= Q(source_id=params["source_id"])
    return q


def _activity_q(op: str, value: Any, params: dict, ctx: Context) -> Q:
    counts = (
        Activity.objects.filter(tenant=OuterRef("tenant"), customer=OuterRef("pk"))
        .filter(_activity_filter(params, ctx))
        .values("customer")
        .annotate(n=Count("*"))
        .values("n")
    )
    count = Coalesce(Subquery(counts, output_field=IntegerField()), Value(0))
    if op == "neq":
        return ~Q(Exact(count, int(value)))
    return Q(ACTIVITY_LOOKUPS[op](count, int(value)))


def _activity_eval(obj: Any, op: str, value: Any, params: dict, ctx: Context) -> bool:
    count = (
        Activity.objects.filter(tenant_id=obj.tenant_id, customer_id=obj.pk)
        .filter(_activity_filter(params, ctx))
        .count()
    )
    return {
        "eq": count == value,
        "neq": count != value,
        "gt": count > value,
        "gte": count >= value,
        "lt": count < value,
        "lte": count <= value,
    }[op]


def register_customer_fields() -> None:
    fields = registry("customer")
    text: dict[str, Any] = {"type": T.STRING, "blank_is_null": True}
    consent = []
    for channel, label in Channel.choices:
        consent += [
            Field(f"{channel}_opt_in", T.BOOLEAN, f"{label} opt-in", group="Consent"),
            Field(f"{channel}_consent_at", T.DATETIME, f"{label} consent decided", group="Consent"),
        ]
    fields.register(
        Field("email", label="Email", **text),
        Field("phone", label="Phone (E.164)", **text),
        Field("first_name", label="First name", **text),
        Field("last_name", label="Last name", **text),
        Field("date_of_birth", T.DATE, "Date of birth"),
        Field("home_club", T.ID, "Home club", lookup="home_club_id"),
        Field("status", T.ENUM, "Status", choices=tuple(ProfileStatus.values)),
        Field("lifecycle_stage", T.ENUM, "Lifecycle stage", choices=tuple(LifecycleStage.values)),
        Field("tags", T.TAGS, "Tags"),
        Field("created_at", T.DATETIME, "Became known"),
        *consent,
        Field("membership_type", label="Membership type", group="Membership", **text),
        Field("membership_status", label="Membership status", group="Membership", **text),
        Field("membership_joined_on", T.DATE, "Member since", group="Membership"),
        Field("membership_renewal_on", T.DATE, "Renewal date", group="Membership"),
        Field("handicap_index", T.NUMBER, "Handicap index", group="Golf"),
        Field("handicap_updated_at", T.DATETIME, "Handicap updated", group="Golf"),
        Field("last_activity_at", T.DATETIME, "Last activity", group="Activity"),
        Field("last_activity_type", label="Last activity type", group="Activity", **text),
        Field(
            "activity_count_30d",
            T.NUMBER,
            "Activities in the last 30 days",
            group="Activity",
            integer=True,
        ),
        Field(
            "lifetime_value",
            T.MONEY,
            "Lifetime value",
            lookup="lifetime_value_minor",
            group="Activity",
        ),
        Field("engagement_score", T.NUMBER, "Engagement score", group="Scores", integer=True),
        Field("churn_risk", T.NUMBER, "Churn risk", group="Scores", integer=True),
        Field(
            "activity_count",
            T.NUMBER,
            "Activities in the last N days (optionally of a type or category)",
            group="Activity",
            integer=True,
            computed=Computed(
                to_q=_activity_q,
                evaluate=_activity_eval,
                params=_activity_params,
                operators=("eq", "neq", "gt", "gte", "lt", "lte"),
                params_fields=(
                    {
                        "name": "days",
                        "type": "number",
                        "label": "In the last (days)",
                        "required": True,
                    },
                    {"name": "type", "type": "string", "label": "Activity type (optional)"},
                    {
                        "name": "category",
                        "type": "enum",
                        "label": "Category (optional)",
                        "choices": [value for value, _ in Category.CHOICES],
                    },
                ),
            ),
        ),
    )
