"""Tenancy and access: tenants, clubs, staff memberships, API keys."""

from __future__ import annotations

import uuid
import zoneinfo
from datetime import time

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from .tenancy import TenantOwnedModel, TimestampedModel, tenant_led_key


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a known IANA time zone.")


def validate_phone_region(value: str) -> None:
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationError(f"{value!r} is not a phone region (ISO 3166 alpha-2, e.g. ZA, GB).")


class Region(models.TextChoices):
    ZA = "ZA", "South Africa"
    UK = "UK", "United Kingdom"


# What a tenant gets when only its region is given.
REGION_DEFAULTS: dict[str, dict[str, str]] = {
    Region.ZA: {"timezone": "Africa/Johannesburg", "phone_region": "ZA", "currency": "ZAR"},
    Region.UK: {"timezone": "Europe/London", "phone_region": "GB", "currency": "GBP"},
}


class Tenant(TimestampedModel):
    """A customer of the platform: a club group or a single club, with its own data."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200)
    region = models.CharField(max_length=2, choices=Region.choices)
    timezone = models.CharField(max_length=64, validators=[validate_timezone])
    default_phone_region = models.CharField(
        max_length=2,
        validators=[validate_phone_region],
        help_text="Region used to read phone numbers written without a country code.",
    )
    currency = models.CharField(max_length=3, help_text="ISO 4217, e.g. ZAR, GBP.")
    is_active = models.BooleanField(default=True)

    # Marketing sends: the sender, quiet hours (local time) and the frequency cap.
    email_from = models.CharField(
        max_length=254, blank=True, default="", help_text='e.g. "Links Golf <news@links.example>"'
    )
    quiet_hours_start = models.TimeField(
        default=time(20, 0), help_text="No marketing messages from this local time ..."
    )
    quiet_hours_end = models.TimeField(default=time(8, 0), help_text="... until this one.")
    frequency_cap = models.PositiveSmallIntegerField(
        default=3, help_text="At most this many marketing messages per customer ..."
    )
    frequency_window_days = models.PositiveSmallIntegerField(
        default=7, help_text="... in this many days (0: no cap)."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Club(TenantOwnedModel):
    """A golf club of a tenant."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="clubs")
    name = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, validators=[validate_timezone])

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="club_tenant_name_uniq"),
        ]

    def __str__(self) -> str:
        return self.name


class StaffRole(models.TextChoices):
    ADMIN = "admin", "Admin"
    MARKETER = "marketer", "Marketer"
    SUPPORT = "support", "Support"


class StaffMembership(TenantOwnedModel):
    """A staff user's access to a tenant (optionally one club of it), with a role."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="staff")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="crm_memberships"
    )
    club = models.ForeignKey(Club, on_delete=models.CASCADE, null=True, blank=True)
    role = models.CharField(max_length=16, choices=StaffRole.choices, default=StaffRole.SUPPORT)

    class Meta:
        ordering = ["tenant", "user"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="staff_tenant_user_uniq"),
        ]
        indexes = [models.Index(fields=["user", "tenant"], name="staff_user_tenant_idx")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant} ({self.role})"

    def clean(self) -> None:
        if self.club is not None and self.club.tenant_id != self.tenant_id:
            raise ValidationError({"club": "The club belongs to another tenant."})


class ApiKey(TenantOwnedModel):
    """A tenant's API credential. Only a SHA-256 of the secret is stored; the key is shown
    once, at creation. The prefix identifies it in lists and logs."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, editable=False
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"
        indexes = [models.Index(fields=["tenant", "-created_at"], name="apikey_tenant_created_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class AuditEvent(TenantOwnedModel):
    """One thing staff or an API credential did to personal data or to access: who
    (``actor``: ``staff:<username>`` or the credential), what (``action`` on ``object_type``
    ``object_id``), when (``created_at``), from where (``ip``) and the before/after of the
    fields it changed. Append-only: written by ``crm.audit.audit_record`` only, never
    updated or deleted by the application (the admin is read-only); see docs/privacy.md for
    how long rows are kept."""

    id = models.BigAutoField(primary_key=True)
    tenant = tenant_led_key()
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=40)
    object_type = models.CharField(max_length=60)
    object_id = models.CharField(max_length=64, blank=True, default="")
    ip = models.GenericIPAddressField(null=True, blank=True)
    changes = models.JSONField(
        default=dict, blank=True, help_text='{"field": {"before": ..., "after": ...}}'
    )
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "-created_at", "-id"], name="audit_tenant_created_idx"),
            models.Index(fields=["tenant", "object_type", "object_id"], name="audit_object_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.actor} {self.action} {self.object_type}:{self.object_id}"


class RetentionMark(TimestampedModel):
    """How far a retention sweep has got through a table (``crm.retention``): the last
    primary key it handled. Platform state, not a tenant's data (a sweep walks a table's
    ids across tenants), updated in the transaction of each batch, so a killed sweep
    resumes at the batch it was doing and never handles a row twice."""

    name = models.CharField(max_length=60, unique=True)
    upto_id = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} up to id {self.upto_id}"
