"""Models of the marketing app: segments (this file grows with campaigns)."""

from __future__ import annotations

import uuid

from django.db import models

from crm.tenancy import TenantOwnedModel


class SegmentType(models.TextChoices):
    DYNAMIC = "DYNAMIC", "Dynamic (rules)"
    STATIC = "STATIC", "Static (chosen people)"


class RefreshFrequency(models.TextChoices):
    MANUAL = "MANUAL", "Manual"
    HOURLY = "HOURLY", "Hourly"
    DAILY = "DAILY", "Daily"


class Segment(TenantOwnedModel):
    """A set of customers: by rules (dynamic, refreshed set-wise) or chosen (static)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")
    club = models.ForeignKey(
        "crm.Club",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The club whose staff own it (not a filter: add a home-club rule for that).",
    )
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, default="")
    type = models.CharField(max_length=8, choices=SegmentType.choices, default=SegmentType.DYNAMIC)
    criteria = models.JSONField(default=dict, blank=True)
    refresh_frequency = models.CharField(
        max_length=8, choices=RefreshFrequency.choices, default=RefreshFrequency.DAILY
    )
    member_count = models.PositiveIntegerField(default=0)
    last_refreshed_at = models.DateTimeField(null=True, blank=True)
    last_refresh_ms = models.PositiveIntegerField(null=True, blank=True)
    next_refresh_at = models.DateTimeField(null=True, blank=True)
    messaging_segment_id = models.CharField(max_length=64, blank=True, default="")
    messaging_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="segment_tenant_name_uniq"),
        ]
        indexes = [
            models.Index(
                fields=["next_refresh_at"],
                condition=models.Q(type="DYNAMIC") & ~models.Q(refresh_frequency="MANUAL"),
                name="segment_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.name


# Memberships and changes are derived (a refresh recomputes them) and written hundreds of
# thousands at a time, so they carry no database foreign-key constraints: the deferred checks
# of a 300,000-member refresh cost more than the refresh. Django's on_delete still cascades.
_DERIVED = {"db_index": False, "db_constraint": False}


class SegmentMembership(TenantOwnedModel):
    """A customer in a segment (``created_at``: since when)."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+", **_DERIVED)
    segment = models.ForeignKey(
        Segment, on_delete=models.CASCADE, related_name="memberships", **_DERIVED
    )
    customer = models.ForeignKey(
        "customers.CustomerProfile", on_delete=models.CASCADE, related_name="+", **_DERIVED
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "segment", "customer"], name="membership_segment_customer_uniq"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "customer"], name="membership_customer_idx"),
        ]


class ChangeKind(models.TextChoices):
    ENTERED = "ENTERED", "Entered"
    LEFT = "LEFT", "Left"


class SegmentChange(TenantOwnedModel):
    """Who entered or left a segment, and when: what segment-entry journeys react to."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+", **_DERIVED)
    segment = models.ForeignKey(
        Segment, on_delete=models.CASCADE, related_name="changes", **_DERIVED
    )
    customer = models.ForeignKey(
        "customers.CustomerProfile", on_delete=models.CASCADE, related_name="+", **_DERIVED
    )
    kind = models.CharField(max_length=7, choices=ChangeKind.choices)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["tenant", "segment", "-created_at", "-id"], name="segmentchange_idx"
            ),
            models.Index(fields=["tenant", "customer"], name="segmentchange_customer_idx"),
        ]
