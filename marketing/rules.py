"""Rule fields the marketing app adds to customers: "member of segment S"."""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, Q

from crm.rules import Computed, Context, Field, T, registry

from .models import SegmentMembership


def _members(segments: tuple) -> Any:
    return SegmentMembership.objects.filter(
        tenant=OuterRef("tenant"), customer=OuterRef("pk"), segment_id__in=list(segments)
    )


def _ids(value: Any) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def _segment_q(op: str, value: Any, params: dict, ctx: Context) -> Q:
    inside = Q(Exists(_members(_ids(value))))
    return ~inside if op == "neq" else inside


def _segment_eval(obj: Any, op: str, value: Any, params: dict, ctx: Context) -> bool:
    inside = SegmentMembership.objects.filter(
        tenant_id=obj.tenant_id, customer_id=obj.pk, segment_id__in=list(_ids(value))
    ).exists()
    return not inside if op == "neq" else inside


def register_marketing_fields() -> None:
    registry("customer").register(
        Field(
            "segment",
            T.ID,
            "Member of segment (eq: of this one; in: of any; neq: not of this one)",
            group="Segments",
            computed=Computed(
                to_q=_segment_q, evaluate=_segment_eval, operators=("eq", "neq", "in")
            ),
        )
    )
